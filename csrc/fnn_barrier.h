/* A barrier and a task counter for kernels that run several phases inside ONE OpenMP parallel region
   (csrc/_rnnlm.pyx's _rnnlm_segment).

   Why not `#pragma omp barrier` or one parallel region per phase: fastnn runs with OMP_WAIT_POLICY=PASSIVE (idle
   OpenMP threads sleep, so that they do not slow BLAS's own threads in other models), and with it every region start
   and every OpenMP barrier puts the waiting threads to sleep and wakes them through the kernel: ~72 us each on the
   2-vCPU Xeon VM, seven times per RNN LM segment.  A thread waiting here first spins (a pause instruction per check)
   for at most FNN_BARRIER_SPINS checks (~20 us on that Xeon, 10 ns per pause: longer than most waits between the
   segment's phases, shorter than the wake-up it saves; 5,000 and 20,000 measured no faster, 0 slower), then sleeps (Linux: a futex on the generation word; elsewhere sched_yield in a loop) until
   the last thread arrives.  The sleep matters on a busy machine: a spinner holds its CPU, so other processes take
   their share from the thread that is still working (whole --preset fast runs beside two niced test suites: 20,000
   spins and then sched_yield trained at 0.7x the speed of OpenMP's own barriers).

   It cannot hang as long as every thread of the team calls fnn_barrier_wait the same number of times with the same
   n = omp_get_num_threads() (the team's real size, which may be below the num_threads asked for): the kernels using
   it have no early exit between barriers.  One team per barrier at a time (a barrier lives on the calling
   function's stack).  Release/acquire ordering: whatever a thread wrote before the barrier is visible to every
   thread after it.

   Compilers without GCC's __atomic builtins (MSVC) use `#pragma omp barrier` and an OpenMP critical counter: the
   same results, with the wake-up cost. */
#ifndef FNN_BARRIER_H
#define FNN_BARRIER_H

#include <stddef.h>

#ifndef FNN_BARRIER_SPINS
#define FNN_BARRIER_SPINS 2000     /* pause instructions: 10 ns each on the Xeon (model 167), ~40 on Skylake-SP */
#endif

typedef struct {
    int count;      /* threads arrived at the current barrier */
    int gen;        /* barriers completed: a waiter leaves when it changes */
    int sleepers;   /* waiters asleep (or about to be) on gen */
} fnn_barrier;

static inline void fnn_barrier_init(fnn_barrier *b) { b->count = 0; b->gen = 0; b->sleepers = 0; }

#if defined(__GNUC__) || defined(__clang__)

#if defined(__x86_64__) || defined(__i386__)
#define FNN_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define FNN_PAUSE() __asm__ __volatile__("yield")
#else
#define FNN_PAUSE() ((void)0)
#endif

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
/* sleep while *addr == val (returns at once if it differs); wake every sleeper on addr */
#define FNN_SLEEP(addr, val) syscall(SYS_futex, (addr), FUTEX_WAIT_PRIVATE, (val), NULL, NULL, 0)
#define FNN_WAKE(addr) syscall(SYS_futex, (addr), FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0)
#elif defined(_WIN32)
#include <windows.h>
#define FNN_SLEEP(addr, val) SwitchToThread()
#define FNN_WAKE(addr) ((void)0)
#else
#include <sched.h>
#define FNN_SLEEP(addr, val) sched_yield()
#define FNN_WAKE(addr) ((void)0)
#endif

/* every one of the n threads of the team calls it; none returns before all n have called it */
static inline void fnn_barrier_wait(fnn_barrier *b, int n) {
    if (n <= 1) return;
    int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
        /* the last to arrive: reset the count for the next barrier, then release the others (the count's store
           comes first: no waiter can reach the next barrier before it sees the new generation), and wake those
           asleep.  gen's store and sleepers' load are sequentially consistent, as a sleeper's increment of sleepers
           before it checks gen: either this sees the sleeper, or the sleeper sees the new gen and does not sleep */
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->gen, gen + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST) > 0) FNN_WAKE(&b->gen);
        return;
    }
    for (long spins = 0; spins < FNN_BARRIER_SPINS; spins++) {
        if (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) != gen) return;
        FNN_PAUSE();
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&b->gen, __ATOMIC_SEQ_CST) == gen) FNN_SLEEP(&b->gen, gen);
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
}

/* the next task of a dynamically scheduled phase: 0, 1, 2, ... across the team (counter zeroed before the region;
   ordering comes from the barriers around the phase) */
static inline ptrdiff_t fnn_task_next(ptrdiff_t *counter) {
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

#else   /* no __atomic builtins: OpenMP's own barrier and a critical section */

static inline void fnn_barrier_wait(fnn_barrier *b, int n) {
    (void)b;
    if (n <= 1) return;
#ifdef _OPENMP
#pragma omp barrier
#endif
}

static inline ptrdiff_t fnn_task_next(ptrdiff_t *counter) {
    ptrdiff_t t;
#ifdef _OPENMP
#pragma omp critical(fnn_task_next)
#endif
    t = (*counter)++;
    return t;
}

#endif
#endif
