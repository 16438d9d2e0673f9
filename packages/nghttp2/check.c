/* A client session that queues a SETTINGS frame and serialises it. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>

int main(void) {
    nghttp2_session_callbacks *cb;
    nghttp2_session *s;
    const uint8_t *data;
    if (nghttp2_session_callbacks_new(&cb))
        return 1;
    if (nghttp2_session_client_new(&s, cb, NULL))
        return 2;
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0))
        return 3;
    /* 9-byte frame header + empty SETTINGS payload. */
    if (nghttp2_session_mem_send(s, &data) != 9 || data[3] != NGHTTP2_SETTINGS)
        return 4;
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cb);
    printf("nghttp2 %s: SETTINGS frame ok\n", nghttp2_version(0)->version_str);
    return 0;
}
