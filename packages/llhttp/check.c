/* Parses a GET request; setting on_protocol needs llhttp >= 9.3, which
 * Node 22's node_http_parser.cc uses. */
#include <llhttp.h>
#include <stdio.h>
#include <string.h>

static int complete;
static int on_message_complete(llhttp_t *p) {
    (void)p;
    complete = 1;
    return 0;
}

int main(void) {
    llhttp_t parser;
    llhttp_settings_t settings;
    const char req[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    llhttp_settings_init(&settings);
    settings.on_message_complete = on_message_complete;
    settings.on_protocol = NULL;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    if (llhttp_execute(&parser, req, strlen(req)) != HPE_OK || !complete)
        return 1;
    if (llhttp_get_method(&parser) != HTTP_GET)
        return 2;
    printf("llhttp %d.%d.%d: GET parsed ok\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
           LLHTTP_VERSION_PATCH);
    return 0;
}
