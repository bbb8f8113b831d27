#include "slice.h"

#include <string.h>

#include "report.h"

void slice_attach(struct slice *s, const struct vmgmt_dev *dev, uint32_t channel)
{
    s->base = dev->bar2 + vmgmt_data_slice_offset(&dev->geom, channel);
    s->size = dev->geom.data_slice_size;
}

bool slice_contains(const struct slice *s, uint64_t offset, uint64_t length)
{
    return offset <= s->size && length <= s->size - offset;
}

uint8_t *slice_at(const struct slice *s, uint32_t offset)
{
    return s->base + offset;
}

bool slice_copy_out(const struct slice *s, uint32_t offset, uint32_t length, void *out)
{
    if (!slice_contains(s, offset, length))
        return false;
    memcpy(out, s->base + offset, length);
    return true;
}

int slice_put_path(struct slice *s, const char *path, const char *what, uint32_t *length)
{
    size_t n = strlen(path);
    if (n == 0)
        return report_error(REPORT_EXIT_USAGE, "%s is empty: give a path relative to the VM's host root (see vmgmt-guest help)", what);
    if (n > SLICE_PATH_AREA_BYTES)
        return report_error(REPORT_EXIT_USAGE, "%s is %zu bytes long, more than the %u bytes the protocol allows: use a shorter path", what, n,
                            SLICE_PATH_AREA_BYTES);
    memcpy(s->base + SLICE_PATH_OFFSET, path, n);
    *length = (uint32_t)n;
    return REPORT_EXIT_OK;
}
