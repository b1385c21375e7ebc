/* test_backend_ops.c — one op suite for every backend (ggml's test-backend-ops): a
 * table of cases covering every backend entry, forward and backward, each run through
 * the backend table only (alloc; value_upload / upload / write in; the op;
 * value_download / download / read out) on the backend under test and on ref, the
 * oracle, from the same seeded inputs, and compared by normalised error in each dtype.
 * A case the backend's `supports` refuses is listed as skipped. With "ref", ref's bf16
 * storage is checked against its own f32 (each result within bf16 rounding of it).
 *
 *   test_backend_ops [ref|onednn|onednn-winograd|cuda]   (no argument: all, then ref)
 *
 * onednn-winograd: the convolution cases on a oneDNN context with conv_algorithm =
 * WINOGRAD, so Winograd runs every 3x3 stride-1 case it takes: oneDNN's F(4x4,3x3) on
 * AVX-512; under the AVX2 cap (nChw8c) our F(2x2,3x3) for inference (winograd.c) and
 * oneDNN's direct fallback for training; with the same f32 bound.
 *
 * Besides the values, the rules of backend.h are checked: every buffer starts as NaN
 * bytes (so reading what nobody wrote shows), an NC__WRITE_SET gradient must be
 * written whole (raw bytes, padding included), NC__WRITE_ADD adds onto known values,
 * parameter gradients accumulate, dropout masks are identical bit for bit (RANDOM
 * MASKS; ref's also against the rule itself), bf16 rounds to nearest even.
 * Output: one line per case, backend and dtype (OK / FAIL / SKIP), then a count; exit
 * status 1 on any FAIL, 77 (meson's skip) when the named backend is not built or
 * cannot start. A plain main rather than cmocka's runner: the line format and the
 * skip status are the suite's interface. One file, past the usual size, because
 * the table, the per-family runners and the comparison are read together. */
#include "testutil.h"

#include "backend/backend.h"
#include "core/context.h"
#include "core/rng.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================ the cases */

typedef enum family {
    F_VALUE, F_CONV, F_FUSED, F_BN, F_BN_RELU, F_RELU, F_ADD, F_DROPOUT, F_POOL, F_LINEAR, F_FLATTEN, F_CONCAT,
    F_LOSS, F_GRAD_NORM, F_CLIP, F_UPDATE, F_FILL_AXPBY
} family;

/* What is not finite in a training-step case. */
typedef enum bad_kind { GOOD = 0, NAN_GRAD, INF_GRAD, NAN_LOSS } bad_kind;

typedef struct tcase {
    const char *name;
    family fam;
    int64_t n, c, h, w;          /* the input value (N, C, H, W); h == 0: an (N, C) value */
    int64_t k, r, s, g;          /* conv: out channels, kernel, groups (0 = 1); linear: k outputs; pool: window */
    int64_t sh, sw, ph, pw, dil; /* strides (0 = 1), padding, dilation (0 = 1) */
    int64_t oh, ow;              /* adaptive pooling's output */
    nc__pool_mode pool;
    int bias, bn, res, relu;     /* conv and linear bias; conv2d_fused_infer's members */
    float p;                     /* dropout probability */
    int64_t widths[3];           /* concat: the inputs' widths (0 ends) */
    nc_loss_kind loss;
    int heads, classes;
    float smoothing, grad_scale; /* grad_scale 0 = 1 */
    int class_w, head_w, pos_w;  /* loss weights given */
    int ignore;                  /* CE: 1 some labels ignored, 2 also all of head 0 */
    nc__optim_kind optim;
    float lr, momentum, dampening, wd, max_norm;
    int nesterov, first;         /* first: every table entry at step 1 */
    bad_kind bad;
} tcase;

/* Columns of the macros are named in the comment above each group of rows. */
#define VALUE(nm, N, C, H, W) {.name = nm, .fam = F_VALUE, .n = N, .c = C, .h = H, .w = W}
#define CONV(nm, N, C, H, W, K, R, S, G, SH, SW, PH, PW, DIL, B)                                                 \
    {.name = nm, .fam = F_CONV, .n = N, .c = C, .h = H, .w = W, .k = K, .r = R, .s = S, .g = G, .sh = SH,       \
     .sw = SW, .ph = PH, .pw = PW, .dil = DIL, .bias = B}
#define FUSED(nm, N, C, H, W, K, R, G, ST, PAD, B, BN, RES, RELU)                                               \
    {.name = nm, .fam = F_FUSED, .n = N, .c = C, .h = H, .w = W, .k = K, .r = R, .s = R, .g = G, .sh = ST,     \
     .sw = ST, .ph = PAD, .pw = PAD, .bias = B, .bn = BN, .res = RES, .relu = RELU}
/* conv2d_fused_infer with every combination of batch norm, residual and ReLU */
#define FUSED8(nm, N, C, H, W, K, R, G, ST, PAD, B)                                                             \
    FUSED(nm, N, C, H, W, K, R, G, ST, PAD, B, 0, 0, 0), FUSED(nm "_bn", N, C, H, W, K, R, G, ST, PAD, B, 1, 0, 0), \
    FUSED(nm "_res", N, C, H, W, K, R, G, ST, PAD, B, 0, 1, 0),                                                 \
    FUSED(nm "_relu", N, C, H, W, K, R, G, ST, PAD, B, 0, 0, 1),                                                \
    FUSED(nm "_bn_res", N, C, H, W, K, R, G, ST, PAD, B, 1, 1, 0),                                              \
    FUSED(nm "_bn_relu", N, C, H, W, K, R, G, ST, PAD, B, 1, 0, 1),                                             \
    FUSED(nm "_res_relu", N, C, H, W, K, R, G, ST, PAD, B, 0, 1, 1),                                            \
    FUSED(nm "_bn_res_relu", N, C, H, W, K, R, G, ST, PAD, B, 1, 1, 1)
#define BN(nm, FAM, N, C, H, W) {.name = nm, .fam = FAM, .n = N, .c = C, .h = H, .w = W}
#define ELEM(nm, FAM, N, C, H, W, P) {.name = nm, .fam = FAM, .n = N, .c = C, .h = H, .w = W, .p = P}
#define POOL(nm, MODE, N, C, H, W, K, ST, PAD, OH, OW)                                                          \
    {.name = nm, .fam = F_POOL, .pool = MODE, .n = N, .c = C, .h = H, .w = W, .r = K, .s = K, .sh = ST,        \
     .sw = ST, .ph = PAD, .pw = PAD, .oh = OH, .ow = OW}
#define LINEAR(nm, N, IN, OUT, B) {.name = nm, .fam = F_LINEAR, .n = N, .c = IN, .k = OUT, .bias = B}
#define CONCAT(nm, N, ...) {.name = nm, .fam = F_CONCAT, .n = N, .widths = {__VA_ARGS__}}
/* along channels of (N, C_i, H, W) values */
#define CONCAT4(nm, N, H, W, ...) {.name = nm, .fam = F_CONCAT, .n = N, .h = H, .w = W, .widths = {__VA_ARGS__}}
#define LOSS(nm, KIND, N, HEADS, CLASSES, SMOOTH, CW, HW, PW, IGN, SCALE)                                       \
    {.name = nm, .fam = F_LOSS, .loss = KIND, .n = N, .heads = HEADS, .classes = CLASSES, .smoothing = SMOOTH, \
     .class_w = CW, .head_w = HW, .pos_w = PW, .ignore = IGN, .grad_scale = SCALE}
#define ARENA(nm, COUNT) {.name = nm, .fam = F_FILL_AXPBY, .n = COUNT}
#define STEP(nm, FAM, MAX_NORM, BAD) {.name = nm, .fam = FAM, .max_norm = MAX_NORM, .bad = BAD}
#define UPDATE(nm, OPT, LR, MOM, DAMP, NEST, WD, FIRST, BAD)                                                    \
    {.name = nm, .fam = F_UPDATE, .optim = OPT, .lr = LR, .momentum = MOM, .dampening = DAMP,                 \
     .nesterov = NEST, .wd = WD, .first = FIRST, .bad = BAD}

#define CE NC_LOSS_CROSS_ENTROPY
#define BCE NC_LOSS_BCE_WITH_LOGITS

/* Small shapes: the whole suite runs in seconds on two cores. Channel counts of 12,
 * 20 and 24 are not multiples of a blocked layout's block (8 or 16): padded. */
static const tcase cases[] = {
    /*     name                      n   c   h   w */
    VALUE("value_c20_blocked",       2, 20,  3,  5),
    VALUE("value_c3",                2,  3,  4,  5),
    VALUE("value_rank2",             3, 17,  0,  0),

    /*    name                       n    c   h   w    k  r  s   g sh sw ph pw dil bias */
    CONV("conv2d_3x3_odd_bias",      2,   8,  7,  5,  16, 3, 3,  1, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_stem_7x7_s2_n1",    1,   3, 16, 16,   8, 7, 7,  1, 2, 2, 3, 3, 1, 0),
    CONV("conv2d_1x1",               2,  16,  6,  6,  24, 1, 1,  1, 1, 1, 0, 0, 1, 0),
    CONV("conv2d_1x1_s2_odd",        2,  16,  7,  7,  32, 1, 1,  1, 2, 2, 0, 0, 1, 1),
    CONV("conv2d_3x3_s2_even",       2,   8,  8,  8,   8, 3, 3,  1, 2, 2, 1, 1, 1, 0),
    CONV("conv2d_c12_k20_padded",    2,  12,  5,  5,  20, 3, 3,  1, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_c1_nopad",          1,   1,  9,  9,   3, 3, 3,  1, 1, 1, 0, 0, 1, 0),
    CONV("conv2d_rect_1x3_s1x2",     3,   5,  5,  8,   7, 1, 3,  1, 1, 2, 0, 1, 1, 1),
    CONV("conv2d_wide_1x1",          2, 256,  4,  4,  64, 1, 1,  1, 1, 1, 0, 0, 1, 0),
    CONV("conv2d_g4_cpg2",           2,   8,  7,  5,   8, 3, 3,  4, 1, 1, 1, 1, 1, 0),
    CONV("conv2d_g4_cpg4_bias",      2,  16,  7,  5,  16, 3, 3,  4, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_g4_cpg8_s2",        2,  32,  7,  7,  32, 3, 3,  4, 2, 2, 1, 1, 1, 0),
    CONV("conv2d_g4_cpg16",          1,  64,  5,  5,  64, 3, 3,  4, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_g4_cpg32_s2",       2, 128,  6,  6, 128, 3, 3,  4, 2, 2, 1, 1, 1, 0),
    CONV("conv2d_g32_cpg2_bias",     2,  64,  5,  5,  64, 3, 3, 32, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_g32_cpg4_s2",       2, 128,  6,  6, 128, 3, 3, 32, 2, 2, 1, 1, 1, 0),
    CONV("conv2d_g4_k2c",            2,  16,  5,  5,  32, 3, 3,  4, 1, 1, 1, 1, 1, 0),
    CONV("conv2d_depthwise",         2,  12,  7,  7,  12, 3, 3, 12, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_dilated_g2",        2,   4, 11, 10,   6, 3, 3,  2, 1, 1, 2, 2, 2, 0),

    /*      name                     n    c   h   w    k  r   g st pad bias */
    FUSED8("fused_stem",             1,   3, 16, 16,  16, 7,  1, 2, 3, 0),
    FUSED8("fused_g4_s2_odd",        2,  16,  9,  7,  16, 3,  4, 2, 1, 0),
    FUSED8("fused_1x1_bias_k20",     2,  12,  5,  5,  20, 1,  1, 1, 0, 1),
    FUSED8("fused_g32_cpg4_n1",      1, 128,  6,  6, 128, 3, 32, 1, 1, 0),

    /* name                          family     n    c  h  w  (h = 0: BatchNorm1d) */
    BN("bn_odd_5x7",                 F_BN,      3,   8, 5, 7),
    BN("bn_batch1",                  F_BN,      1,  16, 3, 3),
    BN("bn_c20_blocked",             F_BN,      2,  20, 5, 5),
    BN("bn_c4",                      F_BN,      2,   4, 3, 3),
    BN("bn_wide_c512",               F_BN,      4, 512, 2, 2),
    BN("bn_rank2",                   F_BN,      6,  32, 0, 0),
    BN("bn_rank2_n2",                F_BN,      2,  20, 0, 0),
    BN("bn_relu_odd_5x7",            F_BN_RELU, 3,   8, 5, 7),
    BN("bn_relu_c20_blocked",        F_BN_RELU, 2,  20, 5, 5),
    BN("bn_relu_batch1",             F_BN_RELU, 1,  16, 3, 3),
    BN("bn_relu_rank2",              F_BN_RELU, 6,  32, 0, 0),

    /*   name                        family     n   c  h  w  p */
    ELEM("relu_c20",                 F_RELU,    2, 20, 5, 3, 0),
    ELEM("relu_c3",                  F_RELU,    1,  3, 4, 4, 0),
    ELEM("relu_rank2",               F_RELU,    3, 17, 0, 0, 0),
    ELEM("add_c20",                  F_ADD,     2, 20, 5, 3, 0),
    ELEM("add_rank2",                F_ADD,     3, 17, 0, 0, 0),
    ELEM("dropout_p0",               F_DROPOUT, 2,  8, 4, 4, 0),
    ELEM("dropout_p0.3_c20",         F_DROPOUT, 2, 20, 5, 3, 0.3f),
    ELEM("dropout_p0.3_c3",          F_DROPOUT, 2,  3, 7, 5, 0.3f),
    ELEM("dropout_p0.3_rank2",       F_DROPOUT, 4, 33, 0, 0, 0.3f),
    ELEM("flatten_c20",              F_FLATTEN, 2, 20, 3, 3, 0),
    ELEM("flatten_c3_odd",           F_FLATTEN, 2,  3, 5, 7, 0),

    /*   name                        mode                    n   c   h   w  k st pad oh ow */
    POOL("maxpool_stem_3s2p1",       NC__POOL_MAX,           2,  4, 16, 16, 3, 2, 1, 0, 0),
    POOL("maxpool_odd_2s2",          NC__POOL_MAX,           1,  3,  7,  9, 2, 2, 0, 0, 0),
    POOL("maxpool_c20_3s2p1",        NC__POOL_MAX,           1, 20,  9,  9, 3, 2, 1, 0, 0),
    POOL("maxpool_3s1p1",            NC__POOL_MAX,           2,  8,  5,  6, 3, 1, 1, 0, 0),
    POOL("avgpool_pad_3s2p1",        NC__POOL_AVG,           2,  3,  9,  7, 3, 2, 1, 0, 0),
    POOL("avgpool_c24_2s2",          NC__POOL_AVG,           1, 24,  8,  8, 2, 2, 0, 0, 0),
    POOL("adaptive_global",          NC__POOL_ADAPTIVE_AVG,  3,  8,  7,  7, 0, 0, 0, 1, 1),
    POOL("adaptive_global_c20",      NC__POOL_ADAPTIVE_AVG,  2, 20,  5,  3, 0, 0, 0, 1, 1),
    POOL("adaptive_uniform_2x3",     NC__POOL_ADAPTIVE_AVG,  2,  3,  8, 12, 0, 0, 0, 2, 3),
    POOL("adaptive_uneven_3x4",      NC__POOL_ADAPTIVE_AVG,  2, 16,  7, 10, 0, 0, 0, 3, 4),

    /*     name                      n   in out bias */
    LINEAR("linear_bias_n1",         1,  37, 10, 1),
    LINEAR("linear_nobias",          3,  64, 17, 0),
    LINEAR("linear_bias",            5,  96, 33, 1),
    LINEAR("linear_out1",            4,   8,  1, 1),

    /*     name                      n  widths */
    CONCAT("concat_2",               3, 5, 7),
    CONCAT("concat_3",               2, 4, 1, 9),

    /*   name                        kind n heads classes smooth cw hw pw ignore scale */
    LOSS("ce",                       CE,  6, 1, 10, 0,     0, 0, 0, 0, 0),
    LOSS("ce_smoothing",             CE,  6, 1, 10, 0.1f,  0, 0, 0, 0, 0),
    LOSS("ce_class_weights",         CE,  6, 1,  5, 0,     1, 0, 0, 0, 0),
    LOSS("ce_ignore",                CE,  7, 1,  4, 0,     0, 0, 0, 1, 0),
    LOSS("ce_3heads_everything",     CE,  5, 3,  4, 0.1f,  1, 1, 0, 1, 0.5f),
    LOSS("ce_head_all_ignored",      CE,  4, 2,  3, 0,     1, 0, 0, 2, 0),
    LOSS("ce_n1_scaled",             CE,  1, 1,  7, 0.05f, 0, 0, 0, 0, 0.25f),
    LOSS("bce",                      BCE, 4, 1,  5, 0,     0, 0, 0, 0, 0),
    LOSS("bce_pos_weight",           BCE, 4, 1,  5, 0,     0, 0, 1, 0, 0),
    LOSS("bce_2heads_weights",       BCE, 3, 2,  4, 0,     0, 1, 1, 0, 0.5f),

    /*   name                        family       max_norm bad */
    STEP("grad_norm",                F_GRAD_NORM, 0,       GOOD),
    STEP("grad_norm_nan_grad",       F_GRAD_NORM, 0,       NAN_GRAD),
    STEP("grad_norm_inf_grad",       F_GRAD_NORM, 0,       INF_GRAD),
    STEP("grad_norm_nan_loss",       F_GRAD_NORM, 0,       NAN_LOSS),
    STEP("clip_scales",              F_CLIP,      1.0f,    GOOD),
    STEP("clip_below_max",           F_CLIP,      100.0f,  GOOD),
    STEP("clip_nonfinite_untouched", F_CLIP,      1.0f,    NAN_LOSS),

    /*     name                      optim           lr     mom   damp  nest wd     first bad */
    UPDATE("sgd",                    NC__OPTIM_SGD,   0.1f,  0,    0,    0,   0,     0,    GOOD),
    UPDATE("sgd_momentum_wd",        NC__OPTIM_SGD,   0.1f,  0.9f, 0,    0,   1e-2f, 0,    GOOD),
    UPDATE("sgd_nesterov_wd",        NC__OPTIM_SGD,   0.05f, 0.9f, 0,    1,   5e-3f, 0,    GOOD),
    UPDATE("sgd_dampening",          NC__OPTIM_SGD,   0.1f,  0.9f, 0.1f, 0,   0,     0,    GOOD),
    UPDATE("sgd_first_step",         NC__OPTIM_SGD,   0.1f,  0.9f, 0,    0,   1e-2f, 1,    GOOD),
    UPDATE("adam",                   NC__OPTIM_ADAM,  1e-2f, 0,    0,    0,   0,     0,    GOOD),
    UPDATE("adam_wd",                NC__OPTIM_ADAM,  1e-2f, 0,    0,    0,   1e-2f, 0,    GOOD),
    UPDATE("adam_first_step",        NC__OPTIM_ADAM,  1e-3f, 0,    0,    0,   0,     1,    GOOD),
    UPDATE("adamw",                  NC__OPTIM_ADAMW, 1e-2f, 0,    0,    0,   0.1f,  0,    GOOD),
    UPDATE("sgd_momentum_skipped",   NC__OPTIM_SGD,   0.1f,  0.9f, 0,    0,   1e-2f, 0,    NAN_LOSS),
    UPDATE("adamw_skipped",          NC__OPTIM_ADAMW, 1e-2f, 0,    0,    0,   0.1f,  0,    NAN_LOSS),

    /*    name                       f32 elements */
    ARENA("fill_axpby_37",           37),
    ARENA("fill_axpby_1000",         1000),

    /* Appended, not with their families: a case's inputs come from its index
     * (case_seed), so new cases go last and leave the others' inputs as they were.
     * grouped.c's widths on nChw16c (and on nChw8c where C/G <= 4): several channel
     * blocks, odd sizes, strides 1 and 2, batch 1. */
    /*    name                       n    c   h   w    k  r  s   g sh sw ph pw dil bias */
    CONV("conv2d_g16_cpg2_s2_odd",   2,  32,  9,  7,  32, 3, 3, 16, 2, 2, 1, 1, 1, 1),
    CONV("conv2d_g12_cpg4_c48",      1,  48,  6,  9,  48, 3, 3, 12, 1, 1, 1, 1, 1, 0),
    CONV("conv2d_g6_cpg8_bias_odd",  2,  48,  7,  5,  48, 3, 3,  6, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_g8_cpg8_s2_n1",     1,  64, 10, 11,  64, 3, 3,  8, 2, 2, 1, 1, 1, 0),
    /*      name                     n    c   h   w    k  r   g st pad bias */
    FUSED8("fused_g4_cpg8_bias",     2,  32,  7,  5,  32, 3,  4, 1, 1, 1),
    FUSED8("fused_g16_cpg2_s2",      1,  32,  9,  9,  32, 3, 16, 2, 1, 0),
    /* Appended: 3x3 stride-1 shapes oneDNN runs with Winograd F(4x4,3x3) on AVX-512
     * when asked (the onednn-winograd target; AUTO keeps such small batches direct):
     * whole and partial 4x4 tiles, channels that are and are not a multiple of 16,
     * batch 1. */
    /*    name                       n    c   h   w    k  r  s   g sh sw ph pw dil bias */
    CONV("conv2d_wino_c64_bias",     2,  64, 12,  8,  64, 3, 3,  1, 1, 1, 1, 1, 1, 1),
    CONV("conv2d_wino_c64_odd",      1,  64,  9,  7, 128, 3, 3,  1, 1, 1, 1, 1, 1, 0),
    CONV("conv2d_wino_c72_k80",      2,  72,  7,  7,  80, 3, 3,  1, 1, 1, 1, 1, 1, 0),
    /*     name                      n    c   h   w    k  r   g st pad bias bn res relu */
    FUSED("fused_wino_c64",          1,  64, 10, 10,  64, 3,  1, 1, 1, 0,   0, 0,  0),
    FUSED("fused_wino_c64_bn_res_relu", 2, 64, 7, 7,  64, 3,  1, 1, 1, 0,   1, 1,  1),

    /* Channel concat of 4-D values (DenseNet): whole channel blocks (one contiguous
     * run per sample in a blocked layout), then plain and padded inputs at offsets
     * that are not block multiples. */
    /*      name                      n  h  w  channels */
    CONCAT4("concat4d_blocks",        2, 3, 5, 32, 16, 48),
    CONCAT4("concat4d_plain_padded",  2, 4, 3,  3, 20, 12),
    CONCAT4("concat4d_offset_odd",    3, 2, 2, 24,  8, 40),

    /* Appended: our Winograd F(2x2,3x3) (winograd.c) on nChw8c, i.e. the
     * onednn-winograd target under the AVX2 cap (backend_ops_onednn_winograd_avx2):
     * channels a multiple of 8 but not 16, partial tiles on both edges, padding 0
     * and 2, 297 tiles (13 chunks), K = 80 (output blocks split between threads). */
    /*     name                      n    c   h   w    k  r   g st pad bias bn res relu */
    FUSED("fused_wino_c24_odd_bias",  2,  24,  9, 11,  32, 3,  1, 1, 1, 1,   0, 1,  1),
    FUSED("fused_wino_c8_pad0_bn",    1,   8,  7,  6,  16, 3,  1, 1, 0, 0,   1, 0,  0),
    FUSED("fused_wino_pad2_many",     3,  16, 13, 17,  48, 3,  1, 1, 2, 1,   1, 0,  1),
    FUSED("fused_wino_c72_k80_bn_res", 1, 72,  7,  7,  80, 3,  1, 1, 1, 0,   1, 1,  0),
};
#define N_CASES (sizeof cases / sizeof *cases)

/* Bounds on the normalised error NMSE = sum((a-b)^2) / sum(b^2) of a backend's
 * result a against ref's b, computed in the same dtype from the same inputs.
 * f32: the backends differ only in the order of summation (and in reciprocals), so
 * sums of products stay within ~1e-11 (oneDNN measured: 1e-14, batch norm over two
 * samples 7e-12) and element-wise results are (nearly) exact. bf16: storage rounds to
 * nearest even, so a result whose f32 value differs in the last f32 bits may round to
 * the neighbouring bf16 (one ulp is 2^-8 to 2^-7 of the value, squared ~1e-5 where it
 * happens), and a fused entry rounds once where ref, op by op, rounds after every op;
 * these bounds await a backend with bf16 values to be measured on. Exact outputs
 * (masks, counts, flags) are compared exactly. */
typedef enum tol_class { T_ELEM, T_GEMM, T_NORM, T_FUSED, T_LOSS, T_STEP, T_COUNT } tol_class;
static const double tolerance[T_COUNT][NC__DTYPE_COUNT] = {
    /*               f32     bf16 */
    [T_ELEM]  = {1e-12, 1e-6}, /* copies, relu, add, dropout, pooling: one rounding */
    [T_GEMM]  = {1e-10, 1e-5}, /* convolution, linear: long sums */
    [T_NORM]  = {1e-10, 1e-5}, /* batch norm: statistics, then a long backward sum */
    [T_FUSED] = {1e-10, 1e-4}, /* conv + bn + residual + relu: ref rounds 4 times in bf16 */
    [T_LOSS]  = {1e-10, 1e-6}, /* softmax / BCE in f32 or double: loss and dlogits */
    [T_STEP]  = {1e-10, 1e-10}, /* norm, clip, optimizers, fill, axpby: f32 masters only */
};

/* What each family is: its tolerance class, whether it runs on bf16 values (the
 * training step works on f32 masters only), whether it has backward entries (asked
 * of `supports` with training = 1 first), and whether it asks `supports` at all
 * (fill, axpby and the step's entries are required of every backend; value
 * transfers in a dtype are needed where the backend runs ops on such values, so they
 * ask relu's question). */
typedef struct family_info {
    tol_class tol;
    int bf16, backward, query;
} family_info;
static const family_info families[] = {
    /*                tol      bf16 backward query */
    [F_VALUE]      = {T_ELEM,  1,   0,       1},
    [F_CONV]       = {T_GEMM,  1,   1,       1},
    [F_FUSED]      = {T_FUSED, 1,   0,       1},
    [F_BN]         = {T_NORM,  1,   1,       1},
    [F_BN_RELU]    = {T_NORM,  1,   1,       1},
    [F_RELU]       = {T_ELEM,  1,   1,       1},
    [F_ADD]        = {T_ELEM,  1,   1,       1},
    [F_DROPOUT]    = {T_ELEM,  1,   1,       1},
    [F_POOL]       = {T_ELEM,  1,   1,       1},
    [F_LINEAR]     = {T_GEMM,  1,   1,       1},
    [F_FLATTEN]    = {T_ELEM,  1,   1,       1},
    [F_CONCAT]     = {T_ELEM,  1,   1,       1},
    [F_LOSS]       = {T_LOSS,  1,   0,       1},
    [F_GRAD_NORM]  = {T_STEP,  0,   0,       0},
    [F_CLIP]       = {T_STEP,  0,   0,       0},
    [F_UPDATE]     = {T_STEP,  0,   0,       0},
    [F_FILL_AXPBY] = {T_STEP,  0,   0,       0},
};

static int has_dtype(family f, nc__dtype dt) { return dt == NC__DTYPE_F32 || families[f].bf16; }

/* ====================================================== sides, runs, outputs */

#define MAX_BUFS 64
#define MAX_OUTS 24
#define MAX_CACHE 4

/* One backend under test, reached through its table only. */
typedef struct side {
    const char *name;
    nc_context *ctx;
    const nc__backend *be;
    void *st;
    int oracle;                 /* ref: runs the fused patterns op by op */
    void *bufs[MAX_BUFS];       /* this run's allocations */
    int nbufs;
    void *cache[MAX_CACHE];     /* this run's per-node cache slots */
} side;

typedef enum out_kind {
    O_VALUE,                    /* an activation value or gradient, in the run's dtype */
    O_F32,                      /* f32 masters: parameter gradients, statistics, scalars */
    O_EXACT                     /* masks, counts, flags: equal (NaN equals NaN) */
} out_kind;

typedef struct output {
    const char *name;
    out_kind kind;
    float *v;
    size_t n;
} output;

typedef struct outputs {
    output o[MAX_OUTS];
    int count;
    char defect[200];           /* the first broken rule (garbage left, mask rule, ...) */
    char failed[300];           /* a backend call that failed, ending the run */
} outputs;

typedef struct run {
    side *sd;
    const tcase *tc;
    nc__dtype dt;
    int training;               /* backward entries (and train-mode batch norm) too */
    int round;                  /* host inputs rounded to bf16 values (ref bf16 against f32) */
    uint64_t seed;              /* stream of the next host input */
    outputs *out;
    jmp_buf fail;               /* a failed backend call ends the run */
} run;

static const unsigned char GARBAGE = 0xff; /* every byte 0xff: NaN in f32 and in bf16 */

/* f32 -> the nearest bf16 (ties to even) as an f32; NaN stays NaN. Written here on
 * its own so the suite does not check the library's conversion with itself. */
static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) <= 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void must(run *r, const char *what, nc_status st) {
    if (st == NC_OK) return;
    snprintf(r->out->failed, sizeof r->out->failed, "%s: %s (%s)", what, nc_status_str(st),
             nc_context_last_error(r->sd->ctx));
    longjmp(r->fail, 1);
}

static void defect(run *r, const char *fmt, const char *what, size_t i, size_t n) {
    if (r->out->defect[0]) return;
    char msg[120];
    snprintf(msg, sizeof msg, fmt, i, n);
    snprintf(r->out->defect, sizeof r->out->defect, "%s: %s", what, msg);
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_backend_ops: out of host memory\n");
        exit(1);
    }
    return p;
}

/* Backend memory of `bytes`, filled with NaN garbage through `write`. */
static void *buf_new(run *r, size_t bytes) {
    side *sd = r->sd;
    if (sd->nbufs == MAX_BUFS) {
        fprintf(stderr, "test_backend_ops: %s needs more than %d buffers\n", r->tc->name, MAX_BUFS);
        exit(1);
    }
    void *p = NULL;
    must(r, "alloc", sd->be->alloc(sd->st, bytes, &p));
    sd->bufs[sd->nbufs++] = p;
    unsigned char *junk = xmalloc(bytes);
    memset(junk, GARBAGE, bytes);
    nc_status st = sd->be->write(sd->st, p, junk, bytes);
    free(junk);
    must(r, "write", st);
    return p;
}

/* Host inputs: uniform in [lo, hi) from the run's next stream. */
static float *host_rand(run *r, size_t n, float lo, float hi) {
    float *h = xmalloc(n * sizeof *h);
    tu_fill_uniform(h, n, lo, hi, r->seed++);
    if (r->round)
        for (size_t i = 0; i < n; i++) h[i] = bf16_round(h[i]);
    return h;
}

static size_t numel(const nc__value_desc *v) { return (size_t)nc__shape_numel(&v->shape); }

static void *value_new(run *r, const nc__value_desc *v) {
    return buf_new(r, r->sd->be->value_bytes(r->sd->st, v));
}

static void *value_from(run *r, const nc__value_desc *v, const float *host) {
    void *p = value_new(r, v);
    must(r, "value_upload", r->sd->be->value_upload(r->sd->st, v, p, host));
    return p;
}

static void *value_in(run *r, const nc__value_desc *v, float lo, float hi) {
    float *h = host_rand(r, numel(v), lo, hi);
    void *p = value_from(r, v, h);
    free(h);
    return p;
}

static void param_put(run *r, void *dst, const float *host, size_t count) {
    const nc__shape s = nc__shape1((int64_t)count);
    must(r, "upload", r->sd->be->upload(r->sd->st, dst, host, &s));
}

/* A plain f32 parameter-like buffer (weights, statistics, gradients, arenas). */
static void *param_from(run *r, const float *host, size_t count) {
    void *p = buf_new(r, count * sizeof(float));
    param_put(r, p, host, count);
    return p;
}

static void *param_in(run *r, size_t count, float lo, float hi) {
    float *h = host_rand(r, count, lo, hi);
    void *p = param_from(r, h, count);
    free(h);
    return p;
}

static void param_refill(run *r, void *dst, size_t count, float lo, float hi) {
    float *h = host_rand(r, count, lo, hi);
    param_put(r, dst, h, count);
    free(h);
}

static void *raw_from(run *r, const void *host, size_t bytes) {
    void *p = buf_new(r, bytes);
    must(r, "write", r->sd->be->write(r->sd->st, p, host, bytes));
    return p;
}

static float *out_add(run *r, const char *name, out_kind kind, size_t n) {
    outputs *o = r->out;
    if (o->count == MAX_OUTS) {
        fprintf(stderr, "test_backend_ops: %s has more than %d outputs\n", r->tc->name, MAX_OUTS);
        exit(1);
    }
    output *e = &o->o[o->count++];
    e->name = name;
    e->kind = kind;
    e->n = n;
    e->v = xmalloc(n * sizeof(float));
    return e->v;
}

static float *out_value(run *r, const char *name, const nc__value_desc *v, const void *buf) {
    float *h = out_add(r, name, O_VALUE, numel(v));
    must(r, "value_download", r->sd->be->value_download(r->sd->st, v, h, buf));
    return h;
}

static void out_param(run *r, const char *name, size_t count, const void *buf) {
    float *h = out_add(r, name, O_F32, count);
    const nc__shape s = nc__shape1((int64_t)count);
    must(r, "download", r->sd->be->download(r->sd->st, h, buf, &s));
}

static void out_exact(run *r, const char *name, const float *v, size_t n) {
    memcpy(out_add(r, name, O_EXACT, n), v, n * sizeof *v);
}

/* Every byte of a value in the backend's layout, padding included (value_bytes). */
static unsigned char *value_raw(run *r, const nc__value_desc *v, const void *buf, size_t *bytes) {
    *bytes = r->sd->be->value_bytes(r->sd->st, v);
    unsigned char *raw = xmalloc(*bytes);
    nc_status st = r->sd->be->read(r->sd->st, raw, buf, *bytes);
    if (st != NC_OK) free(raw);
    must(r, "read", st);
    return raw;
}

/* GRADIENT WRITE RULE: an NC__WRITE_SET output held NaN garbage and must be written
 * whole: every element of its storage is finite afterwards, padding included. */
static void check_written(run *r, const char *what, const nc__value_desc *v, const void *buf) {
    size_t bytes;
    unsigned char *raw = value_raw(r, v, buf, &bytes);
    const size_t es = nc__dtype_size(v->dtype), n = bytes / es;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        if (es == 4) {
            memcpy(&u, raw + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            u = (uint32_t)h << 16;
        }
        if ((u & 0x7f800000u) == 0x7f800000u) {
            defect(r, "storage element %zu of %zu (padding included) still NaN garbage", what, i, n);
            break;
        }
    }
    free(raw);
}

/* ================================================================ descriptors */

static int64_t or1(int64_t v) { return v ? v : 1; }

static nc__value_desc in_value(const tcase *t, nc__dtype dt) {
    nc__value_desc v = {t->h ? nc__shape4(t->n, t->c, t->h, t->w) : nc__shape2(t->n, t->c), dt};
    return v;
}

static nc__conv_desc conv_desc(const tcase *t, nc__dtype dt, void **cache) {
    nc__conv_desc d = {.n = t->n, .c = t->c, .h = t->h, .w = t->w, .k = t->k, .r = t->r, .s = t->s,
                       .groups = or1(t->g), .stride_h = or1(t->sh), .stride_w = or1(t->sw), .pad_h = t->ph,
                       .pad_w = t->pw, .dil_h = or1(t->dil), .dil_w = or1(t->dil), .dtype = dt,
                       .dx_write = NC__WRITE_ADD, .wversion = 1, .cache = cache};
    d.oh = (d.h + 2 * d.pad_h - d.dil_h * (d.r - 1) - 1) / d.stride_h + 1;
    d.ow = (d.w + 2 * d.pad_w - d.dil_w * (d.s - 1) - 1) / d.stride_w + 1;
    return d;
}

static nc__bn_desc bn_desc(const tcase *t, nc__dtype dt, void **cache) {
    nc__bn_desc d = {.n = t->n, .c = t->c, .hw = t->h ? t->h * t->w : 1, .eps = 1e-5f, .momentum = 0.1f,
                     .rank = t->h ? 4 : 2, .dtype = dt, .dx_write = NC__WRITE_ADD, .wversion = 1, .cache = cache};
    return d;
}

static nc__pool_desc pool_desc(const tcase *t, nc__dtype dt, void **cache) {
    nc__pool_desc d = {.mode = t->pool, .n = t->n, .c = t->c, .h = t->h, .w = t->w, .oh = t->oh, .ow = t->ow,
                       .kh = t->r, .kw = t->s, .stride_h = t->sh, .stride_w = t->sw, .pad_h = t->ph,
                       .pad_w = t->pw, .dtype = dt, .dx_write = NC__WRITE_ADD, .cache = cache};
    if (t->pool != NC__POOL_ADAPTIVE_AVG) {
        d.oh = (t->h + 2 * t->ph - t->r) / t->sh + 1;
        d.ow = (t->w + 2 * t->pw - t->s) / t->sw + 1;
    }
    return d;
}

static nc__linear_desc linear_desc(const tcase *t, nc__dtype dt, void **cache) {
    nc__linear_desc d = {.n = t->n, .in = t->c, .out = t->k, .dtype = dt, .dx_write = NC__WRITE_ADD,
                         .wversion = 1, .cache = cache};
    return d;
}

static int concat_count(const tcase *t, int64_t *total) {
    int count = 0;
    *total = 0;
    while (count < 3 && t->widths[count]) *total += t->widths[count++];
    return count;
}

/* A concat value of `width` features (h == 0) or channels. */
static nc__shape concat_shape(const tcase *t, int64_t width) {
    return t->h ? nc__shape4(t->n, width, t->h, t->w) : nc__shape2(t->n, width);
}

/* The descriptors a capability query points at. */
typedef struct query_descs {
    nc__conv_desc conv;
    nc__bn_desc bn;
    nc__pool_desc pool;
    nc__linear_desc linear;
    nc__value_desc value;
    nc__loss_desc loss;
} query_descs;

/* The capability question for a case (ggml's supports_op); the loss is asked with
 * its descriptor and its logits value. */
static nc__op_query query_of(const tcase *t, nc__dtype dt, int training, query_descs *qd) {
    nc__op_query q = {.dtype = dt, .training = training};
    int64_t total;
    switch (t->fam) {
    case F_CONV:
    case F_FUSED:
        qd->conv = conv_desc(t, dt, NULL);
        q.conv = &qd->conv;
        q.kernel = t->fam == F_CONV ? NC__K_CONV2D : NC__K_CONV_FUSED_INFER;
        q.fused_bn = t->bn, q.fused_residual = t->res, q.fused_relu = t->relu;
        break;
    case F_BN:
    case F_BN_RELU:
        qd->bn = bn_desc(t, dt, NULL);
        q.bn = &qd->bn;
        q.kernel = t->fam == F_BN ? NC__K_BATCHNORM : NC__K_BN_RELU_TRAIN;
        break;
    case F_POOL:
        qd->pool = pool_desc(t, dt, NULL);
        q.pool = &qd->pool;
        q.kernel = NC__K_POOL2D;
        break;
    case F_LINEAR:
        qd->linear = linear_desc(t, dt, NULL);
        q.linear = &qd->linear;
        q.kernel = NC__K_LINEAR;
        break;
    case F_CONCAT:
        concat_count(t, &total);
        qd->value = (nc__value_desc){concat_shape(t, total), dt};
        q.value = &qd->value;
        q.kernel = NC__K_CONCAT;
        break;
    case F_LOSS:
        qd->value = (nc__value_desc){nc__shape2(t->n, (int64_t)t->heads * t->classes), dt};
        qd->loss = (nc__loss_desc){.kind = t->loss, .n = t->n, .heads = t->heads, .classes = t->classes,
                                   .dtype = dt, .label_smoothing = t->smoothing, .ignore_label = -100};
        q.value = &qd->value;
        q.loss = &qd->loss;
        q.kernel = NC__K_LOSS;
        break;
    default: /* element-wise: the input value */
        qd->value = in_value(t, dt);
        q.value = &qd->value;
        q.kernel = t->fam == F_RELU || t->fam == F_VALUE ? NC__K_RELU
                   : t->fam == F_ADD     ? NC__K_ADD
                   : t->fam == F_DROPOUT ? NC__K_DROPOUT
                                         : NC__K_FLATTEN;
        break;
    }
    return q;
}

static int supports(const side *sd, const tcase *t, nc__dtype dt, int training) {
    query_descs qd;
    const nc__op_query q = query_of(t, dt, training, &qd);
    return sd->be->supports(sd->st, &q);
}

/* Whether ref, the oracle, accepts a case: every single op in every dtype (the fused
 * patterns it runs op by op, so they are not asked). */
static int oracle_supports(const side *ref, const tcase *t, nc__dtype dt, int training) {
    return !families[t->fam].query || t->fam == F_FUSED || t->fam == F_BN_RELU || supports(ref, t, dt, training);
}

/* ======================================================== one family per run */

static const char *const dx_name[2] = {"dx[add]", "dx[set]"};

/* The gradient an ADD call accumulates onto (known values) or a SET call overwrites
 * (NaN garbage). */
static void *dx_for(run *r, const nc__value_desc *v, nc__write mode) {
    return mode == NC__WRITE_ADD ? value_in(r, v, -1, 1) : value_new(r, v);
}

static void after_dx(run *r, const nc__value_desc *v, nc__write mode, const void *dx) {
    out_value(r, dx_name[mode], v, dx);
    if (mode == NC__WRITE_SET) check_written(r, dx_name[mode], v, dx);
}

/* Value transfers: the round trip rounds to nearest even in bf16 (special values
 * too). */
static void run_value(run *r) {
    const nc__value_desc v = in_value(r->tc, r->dt);
    const size_t n = numel(&v);
    float *h = host_rand(r, n, -3, 3);
    const float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -1.0f - 0x1p-8f,
                             3.0e38f};
    for (size_t i = 0; i < sizeof special / sizeof *special && i < n; i++) h[i * 7 % n] = special[i];
    void *x = value_from(r, &v, h);
    const float *back = out_value(r, "round trip", &v, x);
    for (size_t i = 0; i < n; i++) {
        const float want = r->dt == NC__DTYPE_BF16 ? bf16_round(h[i]) : h[i];
        if (!(back[i] == want || (isnan(back[i]) && isnan(want)))) {
            defect(r, "element %zu of %zu is not the input rounded to nearest even", "round trip", i, n);
            break;
        }
    }
    free(h);
}

static void run_conv(run *r) {
    side *sd = r->sd;
    const nc__backend *be = sd->be;
    nc__conv_desc d = conv_desc(r->tc, r->dt, &sd->cache[0]);
    const nc__value_desc xv = {nc__shape4(d.n, d.c, d.h, d.w), r->dt}, yv = {nc__shape4(d.n, d.k, d.oh, d.ow), r->dt};
    const size_t nw = (size_t)(d.k * (d.c / d.groups) * d.r * d.s), nb = (size_t)d.k;
    void *x = value_in(r, &xv, -1, 1), *w = param_in(r, nw, -1, 1);
    void *b = r->tc->bias ? param_in(r, nb, -1, 1) : NULL, *y = value_new(r, &yv);
    must(r, "conv2d_forward", be->conv2d_forward(sd->st, &d, y, x, w, b));
    out_value(r, "y", &yv, y);
    /* new weights under a new version: a backend's converted copies are refreshed */
    param_refill(r, w, nw, -1, 1);
    d.wversion++;
    must(r, "conv2d_forward", be->conv2d_forward(sd->st, &d, y, x, w, b));
    out_value(r, "y[w2]", &yv, y);
    if (!r->training) return;
    void *dy = value_in(r, &yv, -1, 1), *dw = param_in(r, nw, -1, 1), *db = b ? param_in(r, nb, -1, 1) : NULL;
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &xv, mode);
        d.dx_write = mode;
        must(r, "conv2d_backward", be->conv2d_backward(sd->st, &d, dx, dw, db, dy, x, w));
        after_dx(r, &xv, mode, dx);
        out_param(r, mode == NC__WRITE_ADD ? "dw[add]" : "dw[set]", nw, dw); /* parameter gradients: += */
        if (db) out_param(r, mode == NC__WRITE_ADD ? "db[add]" : "db[set]", nb, db);
    }
    /* no dx (the first layer) and no db */
    must(r, "conv2d_backward", be->conv2d_backward(sd->st, &d, NULL, dw, NULL, dy, x, w));
    out_param(r, "dw[no dx]", nw, dw);
}

/* Ref, the oracle, has no fused entries: conv, batch norm, add and relu one by one. */
static void *fused_by_ops(run *r, nc__conv_desc *d, const nc__bn_params *bn, const nc__value_desc *yv,
                          const void *x, const void *w, const void *b, const void *res) {
    side *sd = r->sd;
    const nc__backend *be = sd->be;
    void *t = value_new(r, yv);
    must(r, "conv2d_forward", be->conv2d_forward(sd->st, d, t, x, w, b));
    if (bn) {
        const nc__bn_desc bd = {.n = d->n, .c = d->k, .hw = d->oh * d->ow, .eps = bn->eps, .momentum = 0.1f,
                                .rank = 4, .dtype = r->dt, .wversion = d->wversion, .cache = &sd->cache[1]};
        void *u = value_new(r, yv);
        must(r, "batchnorm_forward_infer",
             be->batchnorm_forward_infer(sd->st, &bd, u, t, bn->gamma, bn->beta, bn->mean, bn->var));
        t = u;
    }
    if (res) {
        void *u = value_new(r, yv);
        must(r, "add_forward", be->add_forward(sd->st, yv, u, t, res));
        t = u;
    }
    if (r->tc->relu) {
        void *u = value_new(r, yv);
        must(r, "relu_forward", be->relu_forward(sd->st, yv, u, t));
        t = u;
    }
    return t;
}

static void run_fused(run *r) {
    side *sd = r->sd;
    const tcase *t = r->tc;
    nc__conv_desc d = conv_desc(t, r->dt, &sd->cache[0]);
    const nc__value_desc xv = {nc__shape4(d.n, d.c, d.h, d.w), r->dt}, yv = {nc__shape4(d.n, d.k, d.oh, d.ow), r->dt};
    const size_t nw = (size_t)(d.k * (d.c / d.groups) * d.r * d.s), K = (size_t)d.k;
    void *x = value_in(r, &xv, -1, 1), *w = param_in(r, nw, -1, 1), *b = t->bias ? param_in(r, K, -1, 1) : NULL;
    void *res = t->res ? value_in(r, &yv, -1, 1) : NULL;
    nc__bn_params bn = {.eps = 1e-5f};
    if (t->bn) {
        bn.gamma = param_in(r, K, 0.5f, 1.5f), bn.beta = param_in(r, K, -1, 1);
        bn.mean = param_in(r, K, -1, 1), bn.var = param_in(r, K, 0.2f, 2);
    }
    for (int rep = 0; rep < 2; rep++) {
        if (rep) { /* new weights and gamma under a new version: folded copies are redone */
            param_refill(r, w, nw, -1, 1);
            if (t->bn) param_refill(r, (void *)bn.gamma, K, 0.5f, 1.5f);
            d.wversion++;
        }
        void *y;
        if (sd->oracle) {
            y = fused_by_ops(r, &d, t->bn ? &bn : NULL, &yv, x, w, b, res);
        } else {
            y = value_new(r, &yv);
            must(r, "conv2d_fused_infer",
                 sd->be->conv2d_fused_infer(sd->st, &d, t->bn ? &bn : NULL, y, x, w, b, res, t->relu));
        }
        out_value(r, rep ? "y[w2]" : "y", &yv, y);
    }
}

/* Batch norm; F_BN_RELU runs the fused training entries (ref: batch norm, then relu). */
static void run_bn(run *r) {
    side *sd = r->sd;
    const nc__backend *be = sd->be;
    const int fused = r->tc->fam == F_BN_RELU;
    nc__bn_desc d = bn_desc(r->tc, r->dt, &sd->cache[0]);
    const nc__value_desc xv = in_value(r->tc, r->dt);
    const size_t C = (size_t)d.c;
    void *x = value_in(r, &xv, -2, 3), *gamma = param_in(r, C, 0.5f, 1.5f), *beta = param_in(r, C, -1, 1);
    void *rm = param_in(r, C, -1, 1), *rv = param_in(r, C, 0.5f, 2);
    if (r->training) {
        void *y = value_new(r, &xv), *sm = buf_new(r, C * sizeof(float)), *si = buf_new(r, C * sizeof(float));
        if (fused && sd->oracle) {
            void *z = value_new(r, &xv);
            must(r, "batchnorm_forward_train", be->batchnorm_forward_train(sd->st, &d, z, sm, si, rm, rv, x, gamma, beta));
            must(r, "relu_forward", be->relu_forward(sd->st, &xv, y, z));
        } else if (fused) {
            must(r, "batchnorm_relu_forward_train",
                 be->batchnorm_relu_forward_train(sd->st, &d, y, sm, si, rm, rv, x, gamma, beta));
        } else {
            must(r, "batchnorm_forward_train", be->batchnorm_forward_train(sd->st, &d, y, sm, si, rm, rv, x, gamma, beta));
        }
        out_value(r, "y", &xv, y);
        out_param(r, "save_mean", C, sm);
        out_param(r, "save_invstd", C, si);
        out_param(r, "running_mean", C, rm);
        out_param(r, "running_var", C, rv);
        void *dy = value_in(r, &xv, -1, 1), *dg = param_in(r, C, -1, 1), *dbeta = param_in(r, C, -1, 1);
        for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
            void *dx = dx_for(r, &xv, mode);
            d.dx_write = mode;
            if (fused && sd->oracle) {
                void *dz = value_new(r, &xv);
                must(r, "relu_backward", be->relu_backward(sd->st, &xv, NC__WRITE_SET, dz, dy, y));
                must(r, "batchnorm_backward", be->batchnorm_backward(sd->st, &d, dx, dg, dbeta, dz, x, gamma, sm, si));
            } else if (fused) {
                must(r, "batchnorm_relu_backward",
                     be->batchnorm_relu_backward(sd->st, &d, dx, dg, dbeta, dy, y, x, gamma, sm, si));
            } else {
                must(r, "batchnorm_backward", be->batchnorm_backward(sd->st, &d, dx, dg, dbeta, dy, x, gamma, sm, si));
            }
            after_dx(r, &xv, mode, dx);
            out_param(r, mode == NC__WRITE_ADD ? "dgamma[add]" : "dgamma[set]", C, dg);
            out_param(r, mode == NC__WRITE_ADD ? "dbeta[add]" : "dbeta[set]", C, dbeta);
        }
    }
    if (!fused) { /* inference, with the running statistics (updated above when training) */
        void *y = value_new(r, &xv);
        must(r, "batchnorm_forward_infer", be->batchnorm_forward_infer(sd->st, &d, y, x, gamma, beta, rm, rv));
        out_value(r, "y[infer]", &xv, y);
    }
}

static void run_relu(run *r) {
    side *sd = r->sd;
    const nc__value_desc v = in_value(r->tc, r->dt);
    void *x = value_in(r, &v, -1, 1), *y = value_new(r, &v);
    must(r, "relu_forward", sd->be->relu_forward(sd->st, &v, y, x));
    out_value(r, "y", &v, y);
    if (!r->training) return;
    void *dy = value_in(r, &v, -1, 1);
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &v, mode);
        must(r, "relu_backward", sd->be->relu_backward(sd->st, &v, mode, dx, dy, y));
        after_dx(r, &v, mode, dx);
    }
}

/* add_forward; an ADD's input gradients go through `accumulate` in both modes. */
static void run_add(run *r) {
    side *sd = r->sd;
    const nc__value_desc v = in_value(r->tc, r->dt);
    void *a = value_in(r, &v, -1, 1), *b = value_in(r, &v, -1, 1), *y = value_new(r, &v);
    must(r, "add_forward", sd->be->add_forward(sd->st, &v, y, a, b));
    out_value(r, "y", &v, y);
    if (!r->training) return;
    void *dy = value_in(r, &v, -1, 1);
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &v, mode);
        must(r, "accumulate", sd->be->accumulate(sd->st, &v, mode, dx, dy));
        after_dx(r, &v, mode, dx);
    }
}

/* Dropout: y and dx by value, and the kept elements exactly (RANDOM MASKS); ref's
 * mask is also checked against the rule itself. */
static void run_dropout(run *r) {
    side *sd = r->sd;
    const float p = r->tc->p;
    const uint64_t seed = 0x5eed0000u + r->seed;
    const nc__value_desc v = in_value(r->tc, r->dt);
    const size_t n = numel(&v);
    void *x = value_in(r, &v, 0.25f, 1.25f), *y = value_new(r, &v); /* never 0: the mask shows in y */
    must(r, "dropout_forward", sd->be->dropout_forward(sd->st, &v, p, seed, y, x));
    const float *yh = out_value(r, "y", &v, y);
    float *mask = xmalloc(n * sizeof *mask);
    for (size_t i = 0; i < n; i++) mask[i] = yh[i] != 0;
    out_exact(r, "mask", mask, n);
    if (sd->oracle)
        for (size_t i = 0; i < n; i++)
            if (mask[i] != (nc__rng_uniform(seed, 0, i) >= p)) {
                defect(r, "element %zu of %zu is not the RANDOM MASKS rule's", "mask", i, n);
                break;
            }
    if (r->training) {
        void *dy = value_in(r, &v, 0.25f, 1.25f);
        for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
            void *dx = dx_for(r, &v, mode);
            must(r, "dropout_backward", sd->be->dropout_backward(sd->st, &v, mode, p, seed, dx, dy));
            const float *dxh = out_value(r, dx_name[mode], &v, dx);
            if (mode == NC__WRITE_SET) {
                check_written(r, dx_name[mode], &v, dx);
                for (size_t i = 0; i < n; i++) mask[i] = dxh[i] != 0;
                out_exact(r, "mask[backward]", mask, n);
            }
        }
    }
    free(mask);
}

/* Max pooling gets distinct values in every window (integers / 128, exact in bf16), so
 * no tie decides where its gradient goes. */
static void *pool_input(run *r, const nc__value_desc *v) {
    if (r->tc->pool != NC__POOL_MAX) return value_in(r, v, -1, 1);
    const size_t n = numel(v);
    float *h = xmalloc(n * sizeof *h);
    const uint64_t off = r->seed++ * 13;
    for (size_t i = 0; i < n; i++) h[i] = (float)((int)((i * 37 + off) % 251) - 125) / 128.0f;
    void *p = value_from(r, v, h);
    free(h);
    return p;
}

static void run_pool(run *r) {
    side *sd = r->sd;
    nc__pool_desc d = pool_desc(r->tc, r->dt, &sd->cache[0]);
    const nc__value_desc xv = {nc__shape4(d.n, d.c, d.h, d.w), r->dt}, yv = {nc__shape4(d.n, d.c, d.oh, d.ow), r->dt};
    void *x = pool_input(r, &xv), *y = value_new(r, &yv);
    must(r, "pool2d_forward", sd->be->pool2d_forward(sd->st, &d, y, x));
    out_value(r, "y", &yv, y);
    if (!r->training) return;
    void *dy = value_in(r, &yv, -1, 1);
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &xv, mode);
        d.dx_write = mode;
        must(r, "pool2d_backward", sd->be->pool2d_backward(sd->st, &d, dx, dy, x, y));
        after_dx(r, &xv, mode, dx);
    }
}

static void run_linear(run *r) {
    side *sd = r->sd;
    const nc__backend *be = sd->be;
    nc__linear_desc d = linear_desc(r->tc, r->dt, &sd->cache[0]);
    const nc__value_desc xv = {nc__shape2(d.n, d.in), r->dt}, yv = {nc__shape2(d.n, d.out), r->dt};
    const size_t nw = (size_t)(d.in * d.out), nb = (size_t)d.out;
    void *x = value_in(r, &xv, -1, 1), *w = param_in(r, nw, -1, 1);
    void *b = r->tc->bias ? param_in(r, nb, -1, 1) : NULL, *y = value_new(r, &yv);
    must(r, "linear_forward", be->linear_forward(sd->st, &d, y, x, w, b));
    out_value(r, "y", &yv, y);
    param_refill(r, w, nw, -1, 1);
    d.wversion++;
    must(r, "linear_forward", be->linear_forward(sd->st, &d, y, x, w, b));
    out_value(r, "y[w2]", &yv, y);
    if (!r->training) return;
    void *dy = value_in(r, &yv, -1, 1), *dw = param_in(r, nw, -1, 1), *db = b ? param_in(r, nb, -1, 1) : NULL;
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &xv, mode);
        d.dx_write = mode;
        must(r, "linear_backward", be->linear_backward(sd->st, &d, dx, dw, db, dy, x, w));
        after_dx(r, &xv, mode, dx);
        out_param(r, mode == NC__WRITE_ADD ? "dw[add]" : "dw[set]", nw, dw);
        if (db) out_param(r, mode == NC__WRITE_ADD ? "db[add]" : "db[set]", nb, db);
    }
    must(r, "linear_backward", be->linear_backward(sd->st, &d, NULL, dw, NULL, dy, x, w));
    out_param(r, "dw[no dx]", nw, dw);
}

static void run_flatten(run *r) {
    side *sd = r->sd;
    const nc__value_desc xv = in_value(r->tc, r->dt);
    const nc__value_desc yv = {nc__shape2(xv.shape.d[0], (int64_t)numel(&xv) / xv.shape.d[0]), r->dt};
    void *x = value_in(r, &xv, -1, 1), *y = value_new(r, &yv);
    must(r, "flatten_forward", sd->be->flatten_forward(sd->st, &xv, y, x));
    out_value(r, "y", &yv, y);
    if (!r->training) return;
    void *dy = value_in(r, &yv, -1, 1);
    for (nc__write mode = NC__WRITE_ADD; mode <= NC__WRITE_SET; mode++) {
        void *dx = dx_for(r, &xv, mode);
        must(r, "flatten_backward", sd->be->flatten_backward(sd->st, &xv, mode, dx, dy));
        after_dx(r, &xv, mode, dx);
    }
}

/* Concat; backward twice with mixed modes, the second without the last gradient. */
static void run_concat(run *r) {
    side *sd = r->sd;
    static const char *const names[2][3] = {{"dx0[add]", "dx1[set]", "dx2[add]"}, {"dx0[set]", "dx1[add]", "-"}};
    int64_t total;
    const int count = concat_count(r->tc, &total);
    const int64_t *widths = r->tc->widths;
    nc__value_desc xv[3];
    const void *xs[3];
    for (int i = 0; i < count; i++) {
        xv[i] = (nc__value_desc){concat_shape(r->tc, widths[i]), r->dt};
        xs[i] = value_in(r, &xv[i], -1, 1);
    }
    const nc__value_desc yv = {concat_shape(r->tc, total), r->dt};
    void *y = value_new(r, &yv);
    must(r, "concat_forward", sd->be->concat_forward(sd->st, &yv, count, xv, y, xs));
    out_value(r, "y", &yv, y);
    if (!r->training) return;
    void *dy = value_in(r, &yv, -1, 1);
    for (int pass = 0; pass < 2; pass++) {
        nc__write modes[3];
        void *dxs[3];
        for (int i = 0; i < count; i++) {
            modes[i] = (i + pass) % 2 ? NC__WRITE_SET : NC__WRITE_ADD;
            dxs[i] = pass && i == count - 1 ? NULL : dx_for(r, &xv[i], modes[i]);
        }
        must(r, "concat_backward", sd->be->concat_backward(sd->st, &yv, count, xv, modes, dxs, dy));
        for (int i = 0; i < count; i++) {
            if (!dxs[i]) continue;
            out_value(r, names[pass][i], &xv[i], dxs[i]);
            if (modes[i] == NC__WRITE_SET) check_written(r, names[pass][i], &xv[i], dxs[i]);
        }
    }
}

static nc__step_record record_get(run *r, const void *rec) {
    nc__step_record h;
    must(r, "read", r->sd->be->read(r->sd->st, &h, rec, sizeof h));
    return h;
}

static void out_scalar(run *r, const char *name, double v) { *out_add(r, name, O_F32, 1) = (float)v; }

/* The record after `loss`: loss, correct and counted written, the rest as it was. */
static void out_loss_record(run *r, const nc__step_record *h) {
    const float hits[2] = {(float)h->correct, (float)h->counted};
    const float rest[3] = {(float)h->sumsq, (float)h->bad, (float)h->finite};
    out_scalar(r, "loss", h->loss);
    out_exact(r, "correct, counted", hits, 2);
    out_exact(r, "record, untouched", rest, 3);
}

/* The record after `grad_norm`: sumsq, bad and finite written, the rest as it was. */
static void out_norm_record(run *r, const nc__step_record *h) {
    const float flags[2] = {(float)h->bad, (float)h->finite};
    const float rest[3] = {(float)h->loss, (float)h->correct, (float)h->counted};
    out_scalar(r, "sumsq", h->sumsq);
    out_exact(r, "bad, finite", flags, 2);
    out_exact(r, "record, untouched", rest, 3);
}

static void run_loss(run *r) {
    side *sd = r->sd;
    const tcase *t = r->tc;
    const size_t n = (size_t)t->n, hk = (size_t)t->heads * (size_t)t->classes;
    const nc__value_desc v = {nc__shape2(t->n, (int64_t)hk), r->dt};
    const int ce = t->loss == CE;
    nc__loss_desc d = {.kind = t->loss, .n = t->n, .heads = t->heads, .classes = t->classes, .dtype = r->dt,
                       .label_smoothing = t->smoothing, .ignore_label = -100,
                       .grad_scale = t->grad_scale ? t->grad_scale : 1.0f};
    void *logits = value_in(r, &v, -3, 3);
    const size_t nl = ce ? n * (size_t)t->heads : n * hk;
    int32_t *labels = xmalloc(nl * sizeof *labels);
    for (size_t i = 0; i < nl; i++) {
        labels[i] = (int32_t)(nc__rng_u64(r->seed, 3, i) % (ce ? (uint64_t)t->classes : 2));
        if (ce && t->ignore && (i % 3 == 1 || (t->ignore == 2 && i % (size_t)t->heads == 0))) labels[i] = -100;
    }
    r->seed++;
    void *lab = buf_new(r, nl * sizeof *labels);
    nc_status st = sd->be->write(sd->st, lab, labels, nl * sizeof *labels);
    free(labels);
    must(r, "write", st);
    if (t->class_w) d.class_weights = param_in(r, hk, 0.2f, 2);
    if (t->head_w) d.head_weights = param_in(r, (size_t)t->heads, 0.5f, 2);
    if (t->pos_w) d.pos_weight = param_in(r, hk, 0.5f, 3);
    const nc__step_record start = {.loss = -7, .sumsq = 3.5, .correct = -1, .counted = -1, .bad = 5, .finite = 9};
    void *rec = raw_from(r, &start, sizeof start), *dl = value_new(r, &v);
    must(r, "loss", sd->be->loss(sd->st, &d, dl, rec, logits, lab));
    out_value(r, "dlogits", &v, dl);
    check_written(r, "dlogits", &v, dl);
    nc__step_record h = record_get(r, rec);
    out_loss_record(r, &h);
    /* no gradient wanted: the same record */
    must(r, "loss", sd->be->loss(sd->st, &d, NULL, rec, logits, lab));
    h = record_get(r, rec);
    out_scalar(r, "loss[no dlogits]", h.loss);
}

/* ---- the training step's table: entries with different sizes, learning rates,
 * weight decays and steps, 64-byte aligned with 16 floats between them that no entry
 * owns (NaN in the gradients, 42 elsewhere: neither summed nor changed). */
#define N_ENTRIES 4
static const size_t entry_count[N_ENTRIES] = {37, 5, 64, 19};
static const int64_t entry_step[N_ENTRIES] = {1, 2, 5, 10};

typedef struct table {
    nc__param_entry e[N_ENTRIES];
    size_t floats;              /* of each arena */
} table;

static table table_of(const tcase *t) {
    table tb;
    size_t off = 0;
    for (int i = 0; i < N_ENTRIES; i++) {
        tb.e[i] = (nc__param_entry){.offset = off, .count = entry_count[i], .lr = t->lr * (1 + 0.5f * (float)i),
                                    .weight_decay = i == 1 ? 0 : t->wd * (1 + 0.5f * (float)i),
                                    .step = t->first ? 1 : entry_step[i]};
        off += (entry_count[i] * sizeof(float) + 63) / 64 * 64 + 64;
    }
    tb.floats = off / sizeof(float);
    return tb;
}

/* A host arena: random in the entries, `gap` between them. */
static float *arena_host(run *r, const table *tb, float lo, float hi, float gap) {
    float *h = xmalloc(tb->floats * sizeof *h);
    for (size_t i = 0; i < tb->floats; i++) h[i] = gap;
    for (int i = 0; i < N_ENTRIES; i++) tu_fill_uniform(h + tb->e[i].offset / sizeof(float), tb->e[i].count, lo, hi, r->seed++);
    return h;
}

static void *arena_in(run *r, const table *tb, float lo, float hi, float gap) {
    float *h = arena_host(r, tb, lo, hi, gap);
    void *p = param_from(r, h, tb->floats);
    free(h);
    return p;
}

/* Gradients with the case's non-finite entries: NaN in entries 2 and 3 (bad = 2),
 * or +inf in entry 1. */
static void *grads_in(run *r, const table *tb) {
    float *h = arena_host(r, tb, -1, 1, NAN);
    if (r->tc->bad == NAN_GRAD) {
        h[tb->e[2].offset / sizeof(float) + 3] = NAN;
        h[tb->e[3].offset / sizeof(float)] = NAN;
    }
    if (r->tc->bad == INF_GRAD) h[tb->e[1].offset / sizeof(float)] = INFINITY;
    void *p = param_from(r, h, tb->floats);
    free(h);
    return p;
}

static void *record_in(run *r, int finite) {
    const nc__step_record h = {.loss = r->tc->bad == NAN_LOSS ? NAN : 1.25, .sumsq = -1, .correct = 3, .counted = 4,
                               .bad = 99, .finite = finite};
    return raw_from(r, &h, sizeof h);
}

static void run_grad_norm(run *r) {
    side *sd = r->sd;
    const table tb = table_of(r->tc);
    const nc__param_entry *tab = tb.e; /* host memory, like a descriptor (backend.h) */
    void *g = grads_in(r, &tb), *rec = record_in(r, 7);
    must(r, "grad_norm", sd->be->grad_norm(sd->st, tab, N_ENTRIES, rec, g));
    const nc__step_record h = record_get(r, rec);
    out_norm_record(r, &h);
    if (r->tc->fam == F_CLIP) {
        must(r, "clip_grads", sd->be->clip_grads(sd->st, tab, N_ENTRIES, r->tc->max_norm, g, rec));
        out_param(r, "grads", tb.floats, g);
    }
}

static void run_update(run *r) {
    side *sd = r->sd;
    const tcase *t = r->tc;
    const table tb = table_of(t);
    const int adam = t->optim != NC__OPTIM_SGD;
    const nc__optim_desc d = {.kind = t->optim, .momentum = t->momentum, .dampening = t->dampening,
                              .nesterov = t->nesterov, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    const nc__param_entry *tab = tb.e; /* host memory, like a descriptor (backend.h) */
    void *p = arena_in(r, &tb, -1, 1, 42), *g = grads_in(r, &tb);
    void *s1 = adam || t->momentum != 0 ? arena_in(r, &tb, -0.1f, 0.1f, 42) : NULL; /* momentum 0: no buffer */
    void *s2 = adam ? arena_in(r, &tb, 0, 1e-2f, 42) : NULL;
    void *rec = record_in(r, t->bad == GOOD);
    must(r, "update", sd->be->update(sd->st, &d, tab, N_ENTRIES, p, s1, s2, g, rec));
    out_param(r, "params", tb.floats, p);
    if (s1) out_param(r, adam ? "m" : "momentum", tb.floats, s1);
    if (s2) out_param(r, "v", tb.floats, s2);
    if (t->bad == GOOD) { /* no record: the update always runs */
        must(r, "update", sd->be->update(sd->st, &d, tab, N_ENTRIES, p, s1, s2, g, NULL));
        out_param(r, "params[no record]", tb.floats, p);
    }
}

/* fill and axpby on f32 arenas; axpby with a = 0 must not read y (NaN garbage). */
static void run_fill_axpby(run *r) {
    side *sd = r->sd;
    const size_t n = (size_t)r->tc->n;
    void *f = buf_new(r, n * sizeof(float)), *x = param_in(r, n, -1, 1), *y = param_in(r, n, -1, 1);
    must(r, "fill", sd->be->fill(sd->st, f, 0.375f, n));
    out_param(r, "fill", n, f);
    must(r, "axpby", sd->be->axpby(sd->st, n, y, 0.9f, x, 0.1f));
    out_param(r, "axpby", n, y);
    void *g = buf_new(r, n * sizeof(float));
    must(r, "axpby", sd->be->axpby(sd->st, n, g, 0, x, 1));
    out_param(r, "axpby[a=0]", n, g);
}

typedef void (*runner)(run *);
static const runner runners[] = {
    [F_VALUE] = run_value, [F_CONV] = run_conv, [F_FUSED] = run_fused, [F_BN] = run_bn, [F_BN_RELU] = run_bn,
    [F_RELU] = run_relu, [F_ADD] = run_add, [F_DROPOUT] = run_dropout, [F_POOL] = run_pool,
    [F_LINEAR] = run_linear, [F_FLATTEN] = run_flatten, [F_CONCAT] = run_concat, [F_LOSS] = run_loss,
    [F_GRAD_NORM] = run_grad_norm, [F_CLIP] = run_grad_norm, [F_UPDATE] = run_update,
    [F_FILL_AXPBY] = run_fill_axpby,
};

/* Frees a run's buffers and cache slots. */
static void side_reset(side *sd) {
    for (int i = 0; i < MAX_CACHE; i++) {
        if (sd->cache[i] && sd->be->release_cache) sd->be->release_cache(sd->st, sd->cache[i]);
        sd->cache[i] = NULL;
    }
    for (int i = 0; i < sd->nbufs; i++) sd->be->free(sd->st, sd->bufs[i]);
    sd->nbufs = 0;
}

/* Runs case t on one side; 0 when a backend call failed (out->failed says which). */
static int run_on(side *sd, const tcase *t, nc__dtype dt, int training, int round, uint64_t seed, outputs *out) {
    memset(out, 0, sizeof *out);
    run r = {.sd = sd, .tc = t, .dt = dt, .training = training, .round = round, .seed = seed, .out = out};
    if (setjmp(r.fail) == 0) runners[t->fam](&r); /* must() fills out->failed, then jumps back */
    side_reset(sd);
    return !out->failed[0];
}

static void outputs_free(outputs *o) {
    for (int i = 0; i < o->count; i++) free(o->o[i].v);
    o->count = 0;
}

/* ================================================================= comparing */

/* sum((a-b)^2) / sum(b^2) over the finite values; a non-finite value must be matched
 * by the same (NaN by NaN) or the error is infinite. */
static double nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (isnan(b[i]) ? isnan(a[i]) : a[i] == b[i]) continue;
            return INFINITY;
        }
        const double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? num / den : num > 0 ? INFINITY : 0;
}

static size_t mismatches(const float *a, const float *b, size_t n, size_t *first) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))) && count++ == 0) *first = i;
    return count;
}

/* The worst |a-b| in bf16 ulps of b (7 stored mantissa bits; the floor 2^-16 max|b|
 * absorbs f32 noise near zero): at most 0.5 when a is b rounded to nearest, 1 when
 * a is one of b's two bf16 neighbours. */
static double ulp_error(const float *a, const float *b, size_t n) {
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(b[i]) && fabs((double)b[i]) > mx) mx = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (isnan(b[i]) ? isnan(a[i]) : a[i] == b[i]) continue;
            return INFINITY;
        }
        int ex;
        frexp((double)b[i], &ex); /* |b| in [2^(ex-1), 2^ex): one ulp is 2^(ex-8) */
        const double q = fabs((double)a[i] - b[i]) / (ldexp(1.0, ex - 8) + 0x1p-16 * mx + 1e-30);
        if (!(q <= worst)) worst = q;
    }
    return worst;
}

/* Compares the outputs of a run (got) with ref's (want). bf16_vs_f32: got is ref in
 * bf16 and want ref in f32 from the same bf16-exact inputs, so each value must be
 * within bf16 rounding (1 ulp: faithful; round to nearest gives 0.5). Writes the
 * verdict's detail; returns 1 when all pass. */
static int compare(const outputs *got, const outputs *want, tol_class tc, nc__dtype dt, int bf16_vs_f32,
                   char *detail, size_t size) {
    if (got->count != want->count) {
        snprintf(detail, size, "%d outputs against ref's %d", got->count, want->count);
        return 0;
    }
    for (int i = 0; i < got->count; i++) { /* exact outputs first: the sharper diagnosis */
        const output *a = &got->o[i], *b = &want->o[i];
        size_t first = 0, bad;
        if (a->kind == O_EXACT && (bad = mismatches(a->v, b->v, a->n, &first)) != 0) {
            snprintf(detail, size, "%s: %zu of %zu differ (first [%zu]: %g, ref %g)", a->name, bad, a->n, first,
                     (double)a->v[first], (double)b->v[first]);
            return 0;
        }
    }
    const char *worst_name = NULL;
    double worst = -1, worst_tol = 0;
    for (int i = 0; i < got->count; i++) {
        const output *a = &got->o[i], *b = &want->o[i];
        if (a->kind == O_EXACT) continue;
        const int rounding = bf16_vs_f32 && a->kind == O_VALUE;
        const double e = rounding ? ulp_error(a->v, b->v, a->n) : nmse(a->v, b->v, a->n);
        const double tol = rounding ? 1.0 : tolerance[tc][a->kind == O_VALUE ? dt : NC__DTYPE_F32];
        if (!(e <= tol)) {
            snprintf(detail, size, "%s: %s %.3g > %.3g", a->name, rounding ? "bf16 ulps" : "nmse", e, tol);
            return 0;
        }
        if (e / tol > worst) worst = e / tol, worst_name = a->name, worst_tol = tol;
    }
    if (!worst_name) snprintf(detail, size, "exact outputs equal");
    else snprintf(detail, size, "worst %s %.2g (bound %.2g)", worst_name, worst * worst_tol, worst_tol);
    return 1;
}

/* ==================================================================== suites */

typedef struct tally {
    int ok, fail, skip;
} tally;

static void line(tally *t, const char *verdict, const char *backend, const char *dtype, const char *name,
                 const char *detail) {
    printf("%-4s %-7s %-9s %-30s %s\n", verdict, backend, dtype, name, detail);
    fflush(stdout);
    if (!strcmp(verdict, "OK")) t->ok++;
    else if (!strcmp(verdict, "FAIL")) t->fail++;
    else t->skip++;
}

/* Why the target cannot run case c in dt (NULL: it can); *training says whether its
 * backward runs too (a backend may support an op for inference only). */
static const char *refusal(const side *sd, const tcase *c, nc__dtype dt, int *training) {
    const nc__backend *be = sd->be;
    *training = families[c->fam].backward || c->fam == F_LOSS;
    if (c->fam == F_FUSED && !be->conv2d_fused_infer) return "no conv2d_fused_infer entry";
    if (c->fam == F_BN_RELU && (!be->batchnorm_relu_forward_train || !be->batchnorm_relu_backward))
        return "no batchnorm_relu entries";
    if (!families[c->fam].query || supports(sd, c, dt, *training)) return NULL;
    if (families[c->fam].backward && c->fam != F_BN_RELU && supports(sd, c, dt, 0)) {
        *training = 0;
        return NULL;
    }
    return c->fam == F_VALUE ? "no op on such values (supports refuses relu on them)" : "not supported";
}

static uint64_t case_seed(size_t i) { return 1000 + 100 * (uint64_t)i; }

/* Every case on the target and on ref, in each dtype, compared. */
static void suite_backend(side *ref, side *target, int conv_only, tally *t) {
    for (size_t i = 0; i < N_CASES; i++) {
        const tcase *c = &cases[i];
        if (conv_only && c->fam != F_CONV && c->fam != F_FUSED) continue;
        for (nc__dtype dt = NC__DTYPE_F32; dt < NC__DTYPE_COUNT; dt++) {
            if (!has_dtype(c->fam, dt)) continue;
            const char *dn = nc__dtype_name(dt);
            char detail[400];
            int training;
            const char *why = refusal(target, c, dt, &training);
            if (why) {
                line(t, "SKIP", target->name, dn, c->name, why);
                continue;
            }
            if (!oracle_supports(ref, c, dt, training)) {
                line(t, "FAIL", target->name, dn, c->name, "ref's supports refuses it (the oracle runs everything)");
                continue;
            }
            outputs a, b;
            const int ran_a = run_on(target, c, dt, training, 0, case_seed(i), &a);
            const int ran_b = run_on(ref, c, dt, training, 0, case_seed(i), &b);
            int ok = 0;
            if (!ran_a || !ran_b) {
                snprintf(detail, sizeof detail, "%s: %s", ran_a ? ref->name : target->name, ran_a ? b.failed : a.failed);
            } else if (a.defect[0] || b.defect[0]) {
                snprintf(detail, sizeof detail, "%s: %s", a.defect[0] ? target->name : ref->name,
                         a.defect[0] ? a.defect : b.defect);
            } else {
                ok = compare(&a, &b, families[c->fam].tol, dt, 0, detail, sizeof detail);
                if (ok && !training && families[c->fam].backward)
                    strncat(detail, " (forward only: backward not supported)", sizeof detail - strlen(detail) - 1);
            }
            line(t, ok ? "OK" : "FAIL", target->name, dn, c->name, detail);
            outputs_free(&a);
            outputs_free(&b);
        }
    }
}

/* Ref's bf16 storage against its f32: inputs rounded to bf16 values, so the only
 * difference allowed is the rounding of each stored result. (The fused patterns round
 * after each op and are left out.) */
static void suite_ref_bf16(side *ref, tally *t) {
    for (size_t i = 0; i < N_CASES; i++) {
        const tcase *c = &cases[i];
        if (!has_dtype(c->fam, NC__DTYPE_BF16) || c->fam == F_FUSED) continue;
        const int training = families[c->fam].backward || c->fam == F_LOSS;
        if (!oracle_supports(ref, c, NC__DTYPE_BF16, training) || !oracle_supports(ref, c, NC__DTYPE_F32, training)) {
            line(t, "FAIL", "ref", "bf16~f32", c->name, "ref's supports refuses it (the oracle runs everything)");
            continue;
        }
        outputs a, b;
        char detail[400];
        int ok = 0;
        const int ran_a = run_on(ref, c, NC__DTYPE_BF16, training, 1, case_seed(i), &a);
        const int ran_b = run_on(ref, c, NC__DTYPE_F32, training, 1, case_seed(i), &b);
        if (!ran_a || !ran_b) snprintf(detail, sizeof detail, "%s", ran_a ? b.failed : a.failed);
        else if (a.defect[0] || b.defect[0]) snprintf(detail, sizeof detail, "%s", a.defect[0] ? a.defect : b.defect);
        else ok = compare(&a, &b, families[c->fam].tol, NC__DTYPE_BF16, 1, detail, sizeof detail);
        line(t, ok ? "OK" : "FAIL", "ref", "bf16~f32", c->name, detail);
        outputs_free(&a);
        outputs_free(&b);
    }
}

static int side_open(side *sd, const nc__backend *be, nc_conv_algorithm alg, char *why, size_t size) {
    memset(sd, 0, sizeof *sd);
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = be->kind;
    o.num_threads = 2;
    o.conv_algorithm = alg;
    const nc_status st = nc_context_create(&o, &sd->ctx);
    if (st != NC_OK) {
        snprintf(why, size, "%s", nc_status_str(st));
        return 0;
    }
    sd->name = be->name;
    sd->be = sd->ctx->backend;
    sd->st = sd->ctx->backend_state;
    sd->oracle = be == nc__backend_ref();
    return 1;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const struct {
        const char *name;
        const nc__backend *be;
        nc_conv_algorithm alg;
        int conv_only;
    } targets[] = {{"onednn", nc__backend_onednn(), NC_CONV_ALGORITHM_AUTO, 0},
                   {"onednn-winograd", nc__backend_onednn(), NC_CONV_ALGORITHM_WINOGRAD, 1},
                   {"cuda", nc__backend_cuda(), NC_CONV_ALGORITHM_AUTO, 0}};
    const char *want = argc > 1 ? argv[1] : NULL;
    int known = want == NULL || !strcmp(want, "ref");
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) known |= want && !strcmp(want, targets[i].name);
    if (argc > 2 || !known) {
        fprintf(stderr, "usage: %s [ref|onednn|onednn-winograd|cuda]\n", argv[0]);
        return 2;
    }
    const double t0 = seconds();
    tally t = {0, 0, 0};
    char why[200];
    side ref;
    if (!side_open(&ref, nc__backend_ref(), NC_CONV_ALGORITHM_AUTO, why, sizeof why)) {
        printf("FAIL ref cannot start: %s\n", why);
        return 1;
    }
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        if (want && strcmp(want, targets[i].name)) continue;
        side target;
        if (!targets[i].be) {
            printf("SKIP %s: not built\n", targets[i].name);
        } else if (!side_open(&target, targets[i].be, targets[i].alg, why, sizeof why)) {
            printf("SKIP %s: cannot start: %s\n", targets[i].name, why);
        } else {
            target.name = targets[i].name;
            suite_backend(&ref, &target, targets[i].conv_only, &t);
            nc_context_destroy(target.ctx);
            continue;
        }
        if (want) { /* the named backend's suite is skipped */
            nc_context_destroy(ref.ctx);
            return 77;
        }
    }
    if (!want || !strcmp(want, "ref")) suite_ref_bf16(&ref, &t);
    nc_context_destroy(ref.ctx);
    printf("%d OK, %d FAIL, %d SKIP of %zu cases (%.1f s)\n", t.ok, t.fail, t.skip, N_CASES, seconds() - t0);
    return t.fail ? 1 : 0;
}
