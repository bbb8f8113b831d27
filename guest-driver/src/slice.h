/* slice: the channel's share of the data window, [vmgmt_data_slice_offset(h, ch), + data_slice_size).
 * Messages name places in it by (offset, length) relative to its start. Layout used by this driver: the
 * path area (the first MAX_PATH_BYTES), then buffers for bulk data. The host can write the slice at any
 * time: what the driver interprets is copied out first (slice_copy_out); bulk data moves straight between
 * the slice and a local file (slice_at). */
#ifndef VG_SLICE_H
#define VG_SLICE_H
#include <stdbool.h>
#include <stdint.h>

#include "dev.h"

#define SLICE_PATH_OFFSET 0u
#define SLICE_PATH_AREA_BYTES VMGMT_MAX_PATH_BYTES

struct slice {
    uint8_t *base;   /* in BAR2 */
    uint32_t size;   /* data_slice_size, validated by device_validate */
};

void slice_attach(struct slice *s, const struct vmgmt_dev *dev, uint32_t channel);

/* True when [offset, offset + length) lies inside the slice. */
bool slice_contains(const struct slice *s, uint64_t offset, uint64_t length);

/* Where offset is in the mapping; the caller checked the range with slice_contains. */
uint8_t *slice_at(const struct slice *s, uint32_t offset);

/* Copies [offset, offset + length) out of the slice; false when the range is outside it. */
bool slice_copy_out(const struct slice *s, uint32_t offset, uint32_t length, void *out);

/* Writes path (no NUL) into the path area and sets *length. Usage error (named `what`) when the path is
 * empty or longer than MAX_PATH_BYTES. Returns a report_exit code. */
int slice_put_path(struct slice *s, const char *path, const char *what, uint32_t *length);

#endif
