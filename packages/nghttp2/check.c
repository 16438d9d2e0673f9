/* A client session: what it sends first is the connection preface and an
 * empty SETTINGS frame. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    nghttp2_session_callbacks *cb;
    nghttp2_session *s;
    uint8_t out[256];
    size_t len = 0;
    if (nghttp2_session_callbacks_new(&cb))
        return 1;
    if (nghttp2_session_client_new(&s, cb, NULL))
        return 2;
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0))
        return 3;
    for (;;) {
        const uint8_t *data;
        nghttp2_ssize n = nghttp2_session_mem_send2(s, &data);
        if (n < 0 || len + (size_t)n > sizeof out)
            return 4;
        if (n == 0)
            break;
        memcpy(out + len, data, (size_t)n);
        len += (size_t)n;
    }
    /* 24-byte preface, then a 9-byte frame header of type SETTINGS. */
    if (len != NGHTTP2_CLIENT_MAGIC_LEN + 9 || memcmp(out, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN) != 0 ||
        out[NGHTTP2_CLIENT_MAGIC_LEN + 3] != NGHTTP2_SETTINGS)
        return 5;
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cb);
    printf("nghttp2 %s: preface and SETTINGS frame ok\n", nghttp2_version(0)->version_str);
    return 0;
}
