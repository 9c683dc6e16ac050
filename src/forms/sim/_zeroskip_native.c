/* The zero-skip counting in one pass over the codes, compiled (forms.sim.zeroskip_native is the
   Python side and documents the call; forms.sim.zeroskip holds the rules and the torch passes this
   pass must equal; _zeroskip_kernel.h counts).

   count(codes, out, rows, groups, fragment, tile_rows, lane_bits, flag_mask, wider, threads)

   codes: C-contiguous integers (int8/16/32/64, uint8/16, or float32/64 holding exact integers),
   vectors x groups x rows, read as rows of `rows` codes, each narrowed to a lane of `lane_bits` (8 or
   16: its low bits, two's complement) in a row kept in cache. flag_mask has a 1 at the least
   significant bit of every digit of every lane of a 64-bit word; wider = ((k, mask), ...) ORs each
   digit's higher bits down onto it (for k = 1 .. widest digit - 1: mask has a 1 at the least
   significant bit of every digit wider than k). Sub-arrays are `fragment` consecutive rows (a short
   last one), row tiles `tile_rows` (a multiple of fragment).

   out (optional, None to skip) receives the codes on the way: as lanes (uint8 or uint16 of the
   lane's width, same layout as codes) or as values (float32/float64, group-major: the row of vector
   v and group g goes to row g * vectors + v, the layout of a batched GEMM's operand).

   Rows are split over `threads` POSIX threads, the GIL released. `portable` (optional) runs the
   kernel compiled for any processor even where the AVX2 one could run (for tests). Returns (non-zero digits, sub-array
   steps needed under "bitplane", under "leading", row-tile steps under "bitplane", under "leading"). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t digits, rounds_bitplane, rounds_leading, reads_bitplane, reads_leading;
} counts_t;

typedef enum { K_I8, K_U8, K_I16, K_U16, K_I32, K_I64, K_F32, K_F64, K_NONE } kind_t;

enum { MAX_WIDER = 16, MAX_THREADS = 64 };

typedef struct {
    const char *codes;
    char *out;
    kind_t kind, out_kind;
    int wide;                   /* 16-bit lanes (else 8-bit) */
    Py_ssize_t first, last;     /* the rows of codes this job counts */
    Py_ssize_t rows, groups, vectors, fragment, tile_rows;
    uint64_t flag_mask;
    int wider;
    int wider_shift[MAX_WIDER];
    uint64_t wider_mask[MAX_WIDER];
    int failed;                 /* no memory for its scratch rows */
    counts_t counts;
} job_t;

static inline uint64_t load64(const void *p) {
    uint64_t word;
    memcpy(&word, p, sizeof word);
    return word;
}

static Py_ssize_t kind_bytes(kind_t kind) {
    switch (kind) {
    case K_I8: case K_U8: return 1;
    case K_I16: case K_U16: return 2;
    case K_I32: case K_F32: return 4;
    default: return 8;
    }
}

static inline int popcount_words(uint64_t word) { /* a few word operations: no library call */
    word -= (word >> 1) & 0x5555555555555555ULL;
    word = (word & 0x3333333333333333ULL) + ((word >> 2) & 0x3333333333333333ULL);
    word = (word + (word >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (int)((word * 0x0101010101010101ULL) >> 56);
}

/* `PICK(type)` for the C type of source kind `src` (PICK returns), NULL for any other kind. */
#define SWITCH_ON_SOURCE(src, PICK)                                                                  \
    switch (src) {                                                                                   \
    case K_I8: PICK(int8_t)                                                                          \
    case K_U8: PICK(uint8_t)                                                                         \
    case K_I16: PICK(int16_t)                                                                        \
    case K_U16: PICK(uint16_t)                                                                       \
    case K_I32: PICK(int32_t)                                                                        \
    case K_I64: PICK(int64_t)                                                                        \
    case K_F32: PICK(float)                                                                          \
    case K_F64: PICK(double)                                                                         \
    default: return NULL;                                                                            \
    }

typedef void (*copy_fn)(const void *, void *, Py_ssize_t);
typedef void (*split_fn)(const void *, void *, void *, Py_ssize_t);

/* The kernel, once for processors with AVX2 and popcount (x86-64 with GCC), once for any
   (where x86-64's base instruction set has no popcount, a few word operations count). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* clang ignores GCC's target pragma */
#define KERNEL_FAST 1
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")
#include <immintrin.h>
#define KERNEL(name) name##_fast
#define KERNEL_POPCOUNT __builtin_popcountll
#define KERNEL_AVX2 1
#include "_zeroskip_kernel.h"
#undef KERNEL
#undef KERNEL_POPCOUNT
#undef KERNEL_AVX2
#pragma GCC pop_options
#undef KERNEL_RUN_ORS
#undef KERNEL_COPY
#undef KERNEL_SPLIT
#undef KERNEL_COPIES
#endif
#if defined(__x86_64__) && !defined(__POPCNT__) /* the base instruction set: no popcount instruction */
#define KERNEL_POPCOUNT popcount_words
#else
#define KERNEL_POPCOUNT __builtin_popcountll
#endif
#define KERNEL(name) name##_any
#include "_zeroskip_kernel.h"

/* The kernel copy this processor runs (the one for any processor where `portable`). */
static void *(*pick_run_job(int portable))(void *) {
#ifdef KERNEL_FAST
    if (!portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return run_job_fast;
#endif
    (void)portable;
    return run_job_any;
}

/* Run `whole` (every row) split over at most `threads` threads, this one included; the sums, with
   digits = -1 where a job found no memory. */
static counts_t run_split(const job_t *whole, Py_ssize_t threads, int portable) {
    void *(*run_job)(void *) = pick_run_job(portable);
    job_t jobs[MAX_THREADS];
    pthread_t handles[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    Py_ssize_t total_rows = whole->last;
    if (threads > total_rows) threads = total_rows;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    for (Py_ssize_t t = 0; t < threads; t++) {
        jobs[t] = *whole;
        jobs[t].first = total_rows * t / threads;
        jobs[t].last = total_rows * (t + 1) / threads;
        if (t > 0) started[t] = pthread_create(&handles[t], NULL, run_job, &jobs[t]) == 0;
    }
    for (Py_ssize_t t = 1; t < threads; t++)
        if (!started[t]) run_job(&jobs[t]); /* no thread: this one does its share */
    run_job(&jobs[0]);
    counts_t total = {0, 0, 0, 0, 0};
    int failed = 0;
    for (Py_ssize_t t = 0; t < threads; t++) {
        if (started[t]) pthread_join(handles[t], NULL);
        failed |= jobs[t].failed;
        total.digits += jobs[t].counts.digits;
        total.rounds_bitplane += jobs[t].counts.rounds_bitplane;
        total.rounds_leading += jobs[t].counts.rounds_leading;
        total.reads_bitplane += jobs[t].counts.reads_bitplane;
        total.reads_leading += jobs[t].counts.reads_leading;
    }
    if (failed) total.digits = -1;
    return total;
}

/* The kind of a buffer's single-item struct format, or -1. */
static int buffer_kind(const Py_buffer *view) {
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (strlen(f) != 1) return -1;
    switch (*f) {
    case 'b': return K_I8;
    case 'B': return K_U8;
    case 'h': return K_I16;
    case 'H': return K_U16;
    case 'i': case 'l': case 'q':
        return view->itemsize == 4 ? K_I32 : view->itemsize == 8 ? K_I64 : -1;
    case 'f': return K_F32;
    case 'd': return K_F64;
    }
    return -1;
}

/* The (k, mask) pairs of `wider` into `job`; 0, or -1 with an exception set. */
static int parse_wider(PyObject *wider, job_t *job) {
    PyObject *seq = PySequence_Fast(wider, "wider must be a sequence of (shift, mask) pairs");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int ok = n <= MAX_WIDER;
    if (!ok) PyErr_SetString(PyExc_ValueError, "at most 16 (shift, mask) pairs");
    for (Py_ssize_t j = 0; ok && j < n; j++) {
        unsigned long long mask = 0;
        PyObject *pair = PySequence_Tuple(PySequence_Fast_GET_ITEM(seq, j));
        ok = pair && PyArg_ParseTuple(pair, "iK", &job->wider_shift[j], &mask);
        Py_XDECREF(pair);
        if (ok && (job->wider_shift[j] < 1 || job->wider_shift[j] > 63)) {
            PyErr_SetString(PyExc_ValueError, "wider shifts are 1 to 63 bits");
            ok = 0;
        }
        job->wider_mask[j] = mask;
    }
    job->wider = (int)n;
    Py_DECREF(seq);
    return ok ? 0 : -1;
}

/* What is wrong with the arguments, or NULL. */
static const char *check(const job_t *job, const Py_buffer *out, Py_ssize_t items) {
    if (job->rows < 1 || job->groups < 1 || job->fragment < 1 || job->tile_rows < job->fragment ||
        job->tile_rows % job->fragment)
        return "need rows, groups and fragment >= 1 and tile_rows a positive multiple of fragment";
    if (job->rows > PY_SSIZE_T_MAX / job->groups) return "rows x groups overflows";
    if (items % (job->rows * job->groups)) return "the codes are not whole vectors of groups x rows";
    if (out && job->out_kind != (job->wide ? K_U16 : K_U8) && job->out_kind != K_F32 && job->out_kind != K_F64)
        return "out must be lanes (uint8 or uint16, lane_bits wide) or float32/float64 values";
    if (out && out->len != items * kind_bytes(job->out_kind)) return "out must hold one item per code";
    return NULL;
}

static PyObject *count(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *codes_obj, *out_obj, *wider_obj;
    Py_ssize_t threads;
    int lane_bits, portable = 0;
    unsigned long long flag_mask;
    job_t job;
    memset(&job, 0, sizeof job);
    if (!PyArg_ParseTuple(args, "OOnnnniKOn|p", &codes_obj, &out_obj, &job.rows, &job.groups, &job.fragment,
                          &job.tile_rows, &lane_bits, &flag_mask, &wider_obj, &threads, &portable))
        return NULL;
    if (lane_bits != 8 && lane_bits != 16) {
        PyErr_SetString(PyExc_ValueError, "lanes are 8 or 16 bits wide");
        return NULL;
    }
    if (parse_wider(wider_obj, &job) < 0) return NULL;
    Py_buffer bufs[2];
    PyObject *objs[2] = {codes_obj, out_obj};
    int flags[2] = {PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE};
    int held = 0, wanted = out_obj == Py_None ? 1 : 2;
    for (; held < wanted; held++)
        if (PyObject_GetBuffer(objs[held], &bufs[held], flags[held]) < 0) break;
    counts_t total = {0, 0, 0, 0, 0};
    const char *error = NULL;
    if (held == wanted) {
        Py_buffer *codes = &bufs[0], *out = wanted == 2 ? &bufs[1] : NULL;
        Py_ssize_t items = codes->itemsize ? codes->len / codes->itemsize : 0;
        int kind = buffer_kind(codes), out_kind = out ? buffer_kind(out) : K_NONE;
        job.kind = kind < 0 ? K_NONE : (kind_t)kind;
        job.out_kind = out_kind < 0 ? K_NONE : (kind_t)out_kind;
        job.wide = lane_bits == 16;
        error = kind < 0 || job.kind == K_NONE ? "codes must be int8/16/32/64, uint8/16, float32 or float64"
                                               : check(&job, out, items);
        if (error) {
            PyErr_SetString(PyExc_ValueError, error);
        } else {
            job.codes = codes->buf;
            job.out = out ? out->buf : NULL;
            job.last = items / job.rows;
            job.vectors = job.last / job.groups;
            job.flag_mask = flag_mask;
            Py_BEGIN_ALLOW_THREADS
            total = run_split(&job, threads, portable);
            Py_END_ALLOW_THREADS
            if (total.digits < 0) PyErr_NoMemory();
        }
    }
    int failed = held < wanted || error || total.digits < 0;
    while (held > 0) PyBuffer_Release(&bufs[--held]);
    if (failed) return NULL;
    return Py_BuildValue("(LLLLL)", (long long)total.digits, (long long)total.rounds_bitplane,
                         (long long)total.rounds_leading, (long long)total.reads_bitplane,
                         (long long)total.reads_leading);
}

static PyMethodDef methods[] = {
    {"count", count, METH_VARARGS,
     "count(codes, out, rows, groups, fragment, tile_rows, lane_bits, flag_mask, wider, threads, "
     "portable=False) -> "
     "(digits, rounds bitplane, rounds leading, reads bitplane, reads leading): the zero-skip counts of "
     "integer codes in one pass, copying them into `out` (lanes or float values, or None) on the way."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zeroskip_native",
                                    "The zero-skip counting in one compiled pass.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__zeroskip_native(void) { return PyModule_Create(&module); }
