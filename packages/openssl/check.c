/* SHA-256 of "abc", a TLS context, and MD4 through the legacy provider,
 * which no-module builds into the static libcrypto (node's
 * --openssl-legacy-provider needs it). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <stdio.h>

int main(void) {
    unsigned char md[32];
    unsigned int len;
    if (!EVP_Digest("abc", 3, md, &len, EVP_sha256(), NULL) || len != 32 || md[0] != 0xba || md[31] != 0xad)
        return 1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx)
        return 2;
    SSL_CTX_free(ctx);
    if (!OSSL_PROVIDER_load(NULL, "legacy") || !OSSL_PROVIDER_load(NULL, "default"))
        return 3;
    EVP_MD *md4 = EVP_MD_fetch(NULL, "MD4", NULL);
    if (!md4)
        return 4;
    EVP_MD_free(md4);
    printf("%s: sha256, TLS context and legacy MD4 ok\n", OpenSSL_version(OPENSSL_VERSION));
    return 0;
}
