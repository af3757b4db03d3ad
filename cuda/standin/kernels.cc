// The kernels of kernels/*.cu compiled for the CPU (fiber.h provides the
// CUDA device language) and the table that resolves a launch by name:
// the names come from the sources themselves (kernel_names.h is generated
// from the preprocessed kernels/all.cu by cuda/standin/standin.mk), so a
// kernel added there is found here with no list to keep in step.
#include "fiber.h"

#include "../../kernels/all.cu"

#include "standin.h"

#include <cstring>
#include <utility>

namespace {

template <typename T> T from_bits(uint64_t v) {
    static_assert(sizeof(T) == 8, "every kernel parameter is 8 bytes (kernels/common.cuh)");
    T t;
    std::memcpy(&t, &v, 8);
    return t;
}

template <typename F> struct invoker;
template <typename... A> struct invoker<void(A...)> {
    static constexpr int nargs = sizeof...(A);
    template <size_t... I> static void call(void (*k)(A...), const uint64_t *a, std::index_sequence<I...>) {
        k(from_bits<A>(a[I])...);
    }
    static void invoke(void *fn, const uint64_t *args) {
        call((void (*)(A...))fn, args, std::index_sequence_for<A...>{});
    }
};

#define K(name) {#name, invoker<decltype(name)>::nargs, (void *)&name, &invoker<decltype(name)>::invoke},
const standin::kernel table[] = {
#include "kernel_names.h"
};
#undef K

} // namespace

namespace standin {

const kernel *find_kernel(const char *name) {
    for (const kernel &k : table)
        if (std::strcmp(k.name, name) == 0) return &k;
    return nullptr;
}

int kernel_count() { return (int)(sizeof table / sizeof table[0]); }

} // namespace standin
