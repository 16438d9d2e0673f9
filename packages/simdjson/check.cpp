// An on-demand parse of a package.json-like document.
#include <cstdio>
#include <simdjson.h>

int main() {
    simdjson::ondemand::parser parser;
    auto json = simdjson::padded_string(std::string_view(R"({"main":"a.js","n":2})"));
    simdjson::ondemand::document doc;
    if (parser.iterate(json).get(doc))
        return 1;
    std::string_view main;
    int64_t n;
    if (doc["main"].get_string().get(main) || main != "a.js")
        return 2;
    if (doc["n"].get_int64().get(n) || n != 2)
        return 3;
    std::printf("simdjson %s: on-demand parse ok\n", SIMDJSON_VERSION);
    return 0;
}
