// URL normalisation through url_aggregator (what Node's URL uses).
#include <ada.h>
#include <cstdio>

int main() {
    auto u = ada::parse<ada::url_aggregator>("https://EXAMPLE.org/a/../b?q#f");
    if (!u || u->get_href() != "https://example.org/b?q#f")
        return 1;
    if (!ada::can_parse("file:///etc/hosts"))
        return 2;
    std::printf("ada %s: URL parse ok\n", ADA_VERSION);
    return 0;
}
