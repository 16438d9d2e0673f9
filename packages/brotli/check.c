/* Round-trips a buffer through the static brotli libraries. */
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    const char text[] = "NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS NodeOS";
    uint8_t packed[256], unpacked[256];
    size_t packed_len = sizeof packed, unpacked_len = sizeof unpacked;
    if (!BrotliEncoderCompress(BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT,
                               sizeof text, (const uint8_t *)text, &packed_len, packed))
        return 1;
    if (BrotliDecoderDecompress(packed_len, packed, &unpacked_len, unpacked) != BROTLI_DECODER_RESULT_SUCCESS)
        return 2;
    if (unpacked_len != sizeof text || memcmp(unpacked, text, sizeof text) != 0)
        return 3;
    printf("brotli %u.%u.%u round trip %zu -> %zu bytes\n", BrotliDecoderVersion() >> 24,
           (BrotliDecoderVersion() >> 12) & 0xfff, BrotliDecoderVersion() & 0xfff, sizeof text, packed_len);
    return 0;
}
