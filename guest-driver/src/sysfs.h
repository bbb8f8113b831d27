/* sysfs: read and write the small text files under /sys. Return 0 or -errno. */
#ifndef VG_SYSFS_H
#define VG_SYSFS_H
#include <stddef.h>

/* Reads the file into buf (NUL-terminated, trailing newline removed). */
int sysfs_read(const char *path, char *buf, size_t cap);
/* Writes text to the file in one write(). */
int sysfs_write(const char *path, const char *text);
/* Reads an unsigned number ("0x1af4" or "42") from the file. */
int sysfs_read_u64(const char *path, unsigned long long *out);
/* Basename of the target of symlink <dir>/<link> (e.g. the driver or iommu_group of a device), or "" when
 * the link does not exist. Truncated to cap - 1 bytes. */
void sysfs_link_name(const char *dir, const char *link, char *out, size_t cap);

#endif
