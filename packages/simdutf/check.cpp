// UTF-8 validation, UTF-8 -> UTF-16LE and base64, the calls Node makes.
#include <cstdio>
#include <cstring>
#include <simdutf.h>

int main() {
    const char *s = "h\xc3\xa9llo";
    if (!simdutf::validate_utf8(s, std::strlen(s)))
        return 1;
    char16_t out[16];
    size_t n = simdutf::convert_utf8_to_utf16le(s, std::strlen(s), out);
    if (n != 5 || out[1] != 0xe9)
        return 2;
    char b64[16];
    size_t len = simdutf::binary_to_base64("abc", 3, b64);
    if (len != 4 || std::memcmp(b64, "YWJj", 4) != 0)
        return 3;
    std::printf("simdutf %s: utf8/utf16/base64 ok (%s kernel)\n", SIMDUTF_VERSION,
                simdutf::get_active_implementation()->name().c_str());
    return 0;
}
