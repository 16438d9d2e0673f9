// Toolchain self-test (C++): threads, exceptions and iostream, the parts of
// libstdc++ Node relies on. The expected output is in src/selftest.rs.
#include <atomic>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

int main() {
    std::atomic<long> total{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; t++)
        workers.emplace_back([&total, t] {
            for (int i = 0; i < 1000; i++) total += t;
        });
    for (auto &w : workers) w.join();
    std::string caught;
    try {
        throw std::runtime_error("boom");
    } catch (const std::exception &e) {
        caught = e.what();
    }
    std::cout << "c++: threads=" << workers.size() << " total=" << total.load()
              << " caught=" << caught << std::endl;
    return 0;
}
