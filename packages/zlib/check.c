/* Round-trips a buffer through the static zlib. */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

int main(void) {
    const char text[] = "NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS";
    Bytef packed[256], unpacked[256];
    uLongf packed_len = sizeof packed, unpacked_len = sizeof unpacked;
    if (compress2(packed, &packed_len, (const Bytef *)text, sizeof text, 9) != Z_OK)
        return 1;
    if (uncompress(unpacked, &unpacked_len, packed, packed_len) != Z_OK)
        return 2;
    if (unpacked_len != sizeof text || memcmp(unpacked, text, sizeof text) != 0)
        return 3;
    printf("zlib %s round trip %lu -> %lu bytes\n", zlibVersion(), (unsigned long)sizeof text,
           (unsigned long)packed_len);
    return strcmp(zlibVersion(), ZLIB_VERSION) == 0 ? 0 : 4;
}
