#include "sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sysfs_read(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (err)
        return err;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

int sysfs_write(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int err = n < 0 ? -errno : ((size_t)n != len ? -EIO : 0);
    close(fd);
    return err;
}

int sysfs_read_u64(const char *path, unsigned long long *out)
{
    char buf[64];
    int err = sysfs_read(path, buf, sizeof(buf));
    if (err)
        return err;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 0);
    if (errno || end == buf)
        return -EINVAL;
    *out = v;
    return 0;
}

void sysfs_link_name(const char *dir, const char *link, char *out, size_t cap)
{
    char path[256], target[256];
    out[0] = '\0';
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, link) >= sizeof(path))
        return;
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t len = strlen(base);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}
