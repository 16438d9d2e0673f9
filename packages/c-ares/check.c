/* A channel and a DNS record: ares_dns_record_create is c-ares >= 1.28,
 * which Node 22 needs. */
#include <ares.h>
#include <stdio.h>

int main(void) {
    ares_channel_t *ch;
    struct ares_options opts = {0};
    ares_dns_record_t *rec;
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
        return 1;
    if (ares_init_options(&ch, &opts, 0) != ARES_SUCCESS)
        return 2;
    if (ares_dns_record_create(&rec, 1, 0, ARES_OPCODE_QUERY, ARES_RCODE_NOERROR) != ARES_SUCCESS)
        return 3;
    ares_dns_record_destroy(rec);
    ares_destroy(ch);
    ares_library_cleanup();
    printf("c-ares %s: channel and DNS record ok\n", ares_version(NULL));
    return 0;
}
