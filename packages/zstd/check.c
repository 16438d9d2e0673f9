/* Round-trips a buffer through the static zstd. */
#include <stdio.h>
#include <string.h>
#include <zstd.h>

int main(void) {
    const char text[] = "NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS";
    char packed[256], unpacked[256];
    size_t plen = ZSTD_compress(packed, sizeof packed, text, sizeof text, 3);
    if (ZSTD_isError(plen))
        return 1;
    size_t ulen = ZSTD_decompress(unpacked, sizeof unpacked, packed, plen);
    if (ZSTD_isError(ulen) || ulen != sizeof text || memcmp(unpacked, text, ulen) != 0)
        return 2;
    printf("zstd %s round trip %zu -> %zu bytes ok\n", ZSTD_versionString(), sizeof text, plen);
    return 0;
}
