/* Checks sha256.c against FIPS 180-4 vectors and, for files given on the command line, prints
 * "<hex>  <file>" like sha256sum so `make test` can compare the two. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"

static int sha256_test_vector(const char *input, size_t repeat, const char *want)
{
    struct sha256 s;
    uint8_t d[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    sha256_init(&s);
    for (size_t i = 0; i < repeat; i++)
        sha256_update(&s, input, strlen(input));
    sha256_final(&s, d);
    sha256_hex(d, hex);
    if (strcmp(hex, want) == 0)
        return 0;
    fprintf(stderr, "sha256-test: \"%.20s\" x %zu: got %s, want %s\n", input, repeat, hex, want);
    return 1;
}

int main(int argc, char **argv)
{
    int failed = 0;
    failed += sha256_test_vector("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    failed += sha256_test_vector("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    failed += sha256_test_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
                                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    failed += sha256_test_vector("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        uint8_t d[SHA256_BYTES];
        char hex[2 * SHA256_BYTES + 1];
        if (fd < 0 || sha256_fd(fd, d) != 0) {
            perror(argv[i]);
            return 1;
        }
        close(fd);
        sha256_hex(d, hex);
        printf("%s  %s\n", hex, argv[i]);
    }
    return failed ? 1 : 0;
}
