/* test_concurrency.c — one model served from many threads (docs/api.md, Thread
 * safety): 8 threads x 1,000 forwards of mixed batch sizes on ONE model give the
 * serial results bit for bit, on ref and oneDNN (f32, and bf16 values where the CPU
 * has them); a failing call reports its message to its own thread only; changes to
 * the model (setting a tensor, training steps) wait for running inference, so every
 * forward sees the model before or after a change, never half of it. Kernels run
 * with one thread per context so the user threads do not oversubscribe the CPU.
 * NC_CONCURRENCY_CALLS overrides the forwards per thread (the TSan run uses fewer:
 * tests/tsan/run.sh). */
#include "neurc.h"
#include "nc_config.h"
#include "core/model.h"
#include "graph/pool.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define INPUTS 16       /* distinct batches, sizes 1..8 */
#define SIDE 28
#define CLASSES 10
#define WIDTH 8         /* simple_cnn: 8..32 channels, plain and blocked activations on oneDNN */

static int calls_per_thread(void) {
    const char *e = getenv("NC_CONCURRENCY_CALLS");
    int n = e ? atoi(e) : 1000;
    return n > 0 ? n : 1000;
}

/* A one-thread context of `kind` and `precision`; NULL (the case skips) when the
 * backend is not built or the CPU cannot run the precision. */
static nc_context *context_of(nc_backend_kind kind, nc_precision precision) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = kind;
    o.num_threads = 1;
    o.precision = precision;
    nc_context *ctx = NULL;
    nc_status st = nc_context_create(&o, &ctx);
    if (st == NC_ERR_UNSUPPORTED) return NULL;
    assert_int_equal(st, NC_OK);
    return ctx;
}

static nc_model *simple_cnn(nc_context *ctx) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.width = WIDTH;
    mo.num_classes = CLASSES;
    mo.in_channels = 1;
    mo.seed = 5;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

/* ---------------------------------------------- many forwards, bit for bit */

typedef struct inputs {
    int n[INPUTS];
    float *x[INPUTS];
    float *want[INPUTS];        /* serial logits */
} inputs;

static void inputs_make(inputs *in, nc_model *m) {
    for (int k = 0; k < INPUTS; k++) {
        in->n[k] = 1 + (k * 5) % 8;
        in->x[k] = tu_rand((size_t)in->n[k] * SIDE * SIDE, -1, 1, 100 + (uint64_t)k);
        in->want[k] = tu_zeros((size_t)in->n[k] * CLASSES);
        assert_int_equal(nc_model_forward(m, in->x[k], in->n[k], 1, SIDE, SIDE, in->want[k]), NC_OK);
    }
}

static void inputs_free(inputs *in) {
    for (int k = 0; k < INPUTS; k++) {
        free(in->x[k]);
        free(in->want[k]);
    }
}

typedef struct worker {
    nc_model *m;
    const inputs *in;
    int id, calls;
    long failed, differ;        /* results */
    char first_error[256];
} worker;

static void *forward_many(void *arg) {
    worker *w = arg;
    float out[8 * CLASSES];
    for (int i = 0; i < w->calls; i++) {
        const int k = (w->id * 7 + i * 3) % INPUTS; /* every thread walks all sizes, out of step */
        const size_t bytes = (size_t)w->in->n[k] * CLASSES * sizeof(float);
        nc_status st = nc_model_forward(w->m, w->in->x[k], w->in->n[k], 1, SIDE, SIDE, out);
        if (st != NC_OK && w->failed++ == 0)
            snprintf(w->first_error, sizeof w->first_error, "%s: %s", nc_status_str(st),
                     nc_context_last_error(nc_model_context(w->m)));
        if (st == NC_OK && memcmp(out, w->in->want[k], bytes) != 0) w->differ++;
    }
    return NULL;
}

/* THREADS threads run `calls` forwards each on m; returns the calls that failed or
 * differed from the serial results. */
static long run_threads(nc_model *m, const inputs *in, int calls) {
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){.m = m, .in = in, .id = t, .calls = calls};
        assert_int_equal(pthread_create(&th[t], NULL, forward_many, &w[t]), 0);
    }
    long bad = 0;
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        if (w[t].failed) print_message("  thread %d: %ld calls failed, first: %s\n", t, w[t].failed, w[t].first_error);
        if (w[t].differ) print_message("  thread %d: %ld results differ from the serial ones\n", t, w[t].differ);
        bad += w[t].failed + w[t].differ;
    }
    return bad;
}

static void many_threads_case(nc_backend_kind kind, nc_precision precision) {
    nc_context *ctx = context_of(kind, precision);
    if (!ctx) {
        print_message("  %s with this precision is not available here: skipped\n", nc_backend_name(kind));
        skip();
    }
    nc_model *m = simple_cnn(ctx);
    /* bf16 values are refused at the first forward where the CPU cannot run them
     * (an AVX2 CPU, or oneDNN capped at AVX2): skip then, as for a refused context */
    float probe[CLASSES], *px = tu_zeros(SIDE * SIDE);
    const nc_status st = nc_model_forward(m, px, 1, 1, SIDE, SIDE, probe);
    free(px);
    if (st == NC_ERR_UNSUPPORTED) {
        print_message("  %s: %s: skipped\n", nc_backend_name(kind), nc_context_last_error(ctx));
        nc_model_destroy(m);
        nc_context_destroy(ctx);
        skip();
    }
    assert_int_equal(st, NC_OK);
    inputs in;
    inputs_make(&in, m);
    const int calls = calls_per_thread();
    assert_int_equal(run_threads(m, &in, calls), 0);
    const int plans = nc__plan_pool_size(&m->eval_plans);
    print_message("  %s: %d threads x %d forwards equal the serial logits; %d plans in the pool\n",
                  nc_backend_name(kind), THREADS, calls, plans);
    assert_true(plans >= 1 && plans <= THREADS);
    /* serial again afterwards, on a plan from the grown pool: still the same */
    float out[8 * CLASSES];
    assert_int_equal(nc_model_forward(m, in.x[3], in.n[3], 1, SIDE, SIDE, out), NC_OK);
    assert_memory_equal(out, in.want[3], (size_t)in.n[3] * CLASSES * sizeof(float));
    inputs_free(&in);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_concurrency_forward_ref(void **s) {
    (void)s;
    many_threads_case(NC_BACKEND_REF, NC_PRECISION_FP32);
}

static void test_concurrency_forward_onednn(void **s) {
    (void)s;
    SKIP_WITHOUT_ONEDNN();
    many_threads_case(NC_BACKEND_ONEDNN, NC_PRECISION_FP32);
}

/* bf16 values: oneDNN keeps bf16 weight copies per plan, keyed by the weights' version */
static void test_concurrency_forward_onednn_bf16(void **s) {
    (void)s;
    SKIP_WITHOUT_ONEDNN();
    many_threads_case(NC_BACKEND_ONEDNN, NC_PRECISION_BF16);
}

/* ----------------------------------------------- each thread its own message */

typedef struct err_worker {
    nc_model *m;
    int id, rounds;
    pthread_barrier_t *barrier;
    int wrong;                  /* messages that were not this thread's */
} err_worker;

/* Even threads alternate a bad call (a channel count only they use) with a good one;
 * odd threads make good calls only and must never see a message. All start together. */
static void *errors_own(void *arg) {
    err_worker *w = arg;
    nc_context *ctx = nc_model_context(w->m);
    float *x = tu_rand((size_t)2 * (2 + w->id) * 12 * 12, 0, 1, (uint64_t)w->id);
    float out[2 * CLASSES];
    char mine[64];
    snprintf(mine, sizeof mine, "input has %d channels, the model expects 1", 2 + w->id);
    pthread_barrier_wait(w->barrier);
    for (int i = 0; i < w->rounds; i++) {
        const int bad = w->id % 2 == 0 && i % 2 == 0;
        nc_status st = nc_model_forward(w->m, x, 2, bad ? 2 + w->id : 1, 12, 12, out);
        const char *msg = nc_context_last_error(ctx);
        if (st != (bad ? NC_ERR_SHAPE : NC_OK)) w->wrong++;
        if (w->id % 2 == 0 ? strstr(msg, mine) == NULL : msg[0] != '\0') w->wrong++;
    }
    free(x);
    return NULL;
}

static void test_concurrency_errors_per_thread(void **s) {
    (void)s;
    nc_context *ctx = context_of(NC_BACKEND_REF, NC_PRECISION_FP32);
    nc_model *m = simple_cnn(ctx);
    float x[1];
    /* the creating thread's own message, kept while the others fail */
    assert_int_equal(nc_model_forward(m, NULL, 1, 1, 12, 12, x), NC_ERR_NULL);
    char before[256];
    snprintf(before, sizeof before, "%s", nc_context_last_error(ctx));
    assert_non_null(strstr(before, "x or logits is NULL"));

    pthread_barrier_t barrier;
    assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS), 0);
    pthread_t th[THREADS];
    err_worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (err_worker){.m = m, .id = t, .rounds = 200, .barrier = &barrier};
        assert_int_equal(pthread_create(&th[t], NULL, errors_own, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        if (w[t].wrong) print_message("  thread %d: %d calls saw a status or message not its own\n", t, w[t].wrong);
        assert_int_equal(w[t].wrong, 0);
    }
    pthread_barrier_destroy(&barrier);
    assert_string_equal(nc_context_last_error(ctx), before);
    nc_model_destroy(m);
    nc_context_destroy(ctx); /* the ended threads' slots went with them; valgrind: nothing lost */
}

/* A worker thread of a counting context: its message slot is freed when it ends,
 * and the context frees the slots of threads still alive. */
static void *fail_once(void *arg) {
    nc_context *ctx = arg;
    nc_model *m = NULL;
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "no-such-arch";
    const int ok = nc_model_create(ctx, &mo, &m) == NC_ERR_NOT_FOUND &&
                   strstr(nc_context_last_error(ctx), "no-such-arch") != NULL; /* no cmocka asserts off main */
    return ok ? NULL : (void *)1;
}

static void test_concurrency_error_slots_freed(void **s) {
    (void)s;
    tu_counting cnt = {0};
    nc_context *ctx = tu_counting_context(&cnt);
    assert_non_null(ctx);
    const long base = cnt.live;
    for (int round = 0; round < 3; round++) {
        pthread_t th;
        void *failed = NULL;
        assert_int_equal(pthread_create(&th, NULL, fail_once, ctx), 0);
        assert_int_equal(pthread_join(th, &failed), 0);
        assert_null(failed);
        assert_int_equal(cnt.live, base); /* the thread ended: its slot is gone */
    }
    assert_string_equal(nc_context_last_error(ctx), ""); /* the creator never failed */
    nc_context_destroy(ctx);
    assert_int_equal(cnt.live, 0);
}

/* --------------------------------------------- changes wait for inference */

typedef struct reader {
    nc_model *m;
    const float *x;
    const float *want_a, *want_b;
    volatile int *stop;
    long calls, torn, failed, saw_b;
} reader;

#define READ_N 4

static void *read_until_stopped(void *arg) {
    reader *r = arg;
    float out[READ_N * CLASSES];
    const size_t bytes = sizeof out;
    while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
        nc_status st = nc_model_forward(r->m, r->x, READ_N, 1, SIDE, SIDE, out);
        r->calls++;
        if (st != NC_OK) r->failed++;
        else if (r->want_b && memcmp(out, r->want_b, bytes) == 0) r->saw_b++;
        else if (r->want_a && memcmp(out, r->want_a, bytes) != 0) r->torn++;
    }
    return NULL;
}

#define READERS 4

static void start_readers(reader *r, pthread_t *th, nc_model *m, const float *x, const float *a, const float *b,
                          volatile int *stop) {
    for (int t = 0; t < READERS; t++) {
        r[t] = (reader){.m = m, .x = x, .want_a = a, .want_b = b, .stop = stop};
        assert_int_equal(pthread_create(&th[t], NULL, read_until_stopped, &r[t]), 0);
    }
}

static long stop_readers(reader *r, pthread_t *th, volatile int *stop, long *calls, long *saw_b) {
    __atomic_store_n(stop, 1, __ATOMIC_RELEASE);
    long bad = 0;
    *calls = *saw_b = 0;
    for (int t = 0; t < READERS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        bad += r[t].torn + r[t].failed;
        *calls += r[t].calls;
        *saw_b += r[t].saw_b;
    }
    return bad;
}

/* conv1.weight toggles between two whole tensors while readers run: every forward
 * equals the serial result of one of them (oneDNN's cached reordered weights follow
 * the version), never a mix. */
static void set_tensor_case(nc_backend_kind kind) {
    nc_context *ctx = context_of(kind, NC_PRECISION_FP32);
    if (!ctx) skip();
    nc_model *m = simple_cnn(ctx);
    const int64_t count = WIDTH * 1 * 3 * 3; /* conv1.weight (WIDTH, 1, 3, 3) */
    float *wa = tu_zeros((size_t)count), *wb = tu_rand((size_t)count, -0.5f, 0.5f, 77);
    assert_int_equal(nc_model_get_tensor(m, "conv1.weight", wa, count), NC_OK);
    float *x = tu_rand((size_t)READ_N * SIDE * SIDE, -1, 1, 9);
    float *want_a = tu_zeros(READ_N * CLASSES), *want_b = tu_zeros(READ_N * CLASSES);
    assert_int_equal(nc_model_set_tensor(m, "conv1.weight", wb, count), NC_OK);
    assert_int_equal(nc_model_forward(m, x, READ_N, 1, SIDE, SIDE, want_b), NC_OK);
    assert_int_equal(nc_model_set_tensor(m, "conv1.weight", wa, count), NC_OK);
    assert_int_equal(nc_model_forward(m, x, READ_N, 1, SIDE, SIDE, want_a), NC_OK);
    assert_memory_not_equal(want_a, want_b, sizeof(float) * READ_N * CLASSES);

    volatile int stop = 0;
    reader r[READERS];
    pthread_t th[READERS];
    start_readers(r, th, m, x, want_a, want_b, &stop);
    for (int i = 0; i < 200; i++)
        assert_int_equal(nc_model_set_tensor(m, "conv1.weight", i % 2 ? wa : wb, count), NC_OK);
    long calls, saw_b;
    assert_int_equal(stop_readers(r, th, &stop, &calls, &saw_b), 0);
    print_message("  %s: %ld forwards beside 200 weight changes, %ld with the second weights, none torn\n",
                  nc_backend_name(kind), calls, saw_b);
    free(wa), free(wb), free(x), free(want_a), free(want_b);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_concurrency_set_tensor_ref(void **s) {
    (void)s;
    set_tensor_case(NC_BACKEND_REF);
}

static void test_concurrency_set_tensor_onednn(void **s) {
    (void)s;
    SKIP_WITHOUT_ONEDNN();
    set_tensor_case(NC_BACKEND_ONEDNN);
}

/* Training steps beside inference on the same model: every call succeeds, and the
 * model afterwards answers as a serial forward of its final weights. */
static void test_concurrency_training_beside_inference(void **s) {
    (void)s;
    nc_context *ctx = context_of(HAVE_ONEDNN ? NC_BACKEND_ONEDNN : NC_BACKEND_REF, NC_PRECISION_FP32);
    nc_model *m = simple_cnn(ctx);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    nc_trainer *t = NULL;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    float *x = tu_rand((size_t)READ_N * SIDE * SIDE, -1, 1, 21);
    int32_t labels[READ_N] = {1, 2, 3, 4};
    volatile int stop = 0;
    reader r[READERS];
    pthread_t th[READERS];
    start_readers(r, th, m, x, NULL, NULL, &stop);
    for (int i = 0; i < 20; i++) {
        nc_step_stats stats;
        assert_int_equal(nc_trainer_step(t, x, labels, READ_N, 1, SIDE, SIDE, &stats), NC_OK);
    }
    long calls, saw_b;
    assert_int_equal(stop_readers(r, th, &stop, &calls, &saw_b), 0);
    print_message("  %ld forwards beside 20 training steps, all NC_OK\n", calls);
    float after[READ_N * CLASSES], again[READ_N * CLASSES];
    assert_int_equal(nc_model_forward(m, x, READ_N, 1, SIDE, SIDE, after), NC_OK);
    assert_int_equal(nc_model_forward(m, x, READ_N, 1, SIDE, SIDE, again), NC_OK);
    assert_memory_equal(after, again, sizeof after);
    free(x);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency_forward_ref),
        cmocka_unit_test(test_concurrency_forward_onednn),
        cmocka_unit_test(test_concurrency_forward_onednn_bf16),
        cmocka_unit_test(test_concurrency_errors_per_thread),
        cmocka_unit_test(test_concurrency_error_slots_freed),
        cmocka_unit_test(test_concurrency_set_tensor_ref),
        cmocka_unit_test(test_concurrency_set_tensor_onednn),
        cmocka_unit_test(test_concurrency_training_beside_inference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
