/* neurc.h — the one public header of neurc, an embeddable C library that builds,
 * trains, evaluates and runs convolutional image classifiers (ResNet, ResNeXt, VGG,
 * custom CNNs) on the CPU (reference kernels, oneDNN) and NVIDIA GPUs (cuDNN).
 *
 * Overview
 *   nc_context  backend choice, threads, allocator, the last error message
 *   nc_model    a static graph + parameters + buffers + metadata
 *   nc_builder  builds custom graphs; the built-in architectures use it too
 *   nc_trainer  loss + optimizer state; one call per training step
 * Every fallible call returns nc_status (NC_OK = 0) and leaves a precise message
 * in its context (nc_context_last_error). Handles are opaque; destroy functions
 * accept NULL. Images cross the API as host float32 NCHW arrays.
 *
 * Usage
 *   nc_context *ctx;  nc_model *m;  nc_trainer *t;  nc_step_stats s;
 *   nc_context_create(NULL, &ctx);                      // NULL = defaults
 *   nc_model_options mo;  nc_model_options_init(&mo);
 *   mo.arch = "resnet18";  mo.num_classes = 10;  mo.in_channels = 1;
 *   if (nc_model_create(ctx, &mo, &m) != NC_OK)
 *       fprintf(stderr, "%s\n", nc_context_last_error(ctx));
 *   nc_trainer_options to;  nc_trainer_options_init(&to);  to.lr = 0.05f;
 *   nc_trainer_create(m, &to, &t);
 *   nc_trainer_step(t, x, labels, 64, 1, 28, 28, &s);   // x: 64*1*28*28 floats
 *   nc_model_forward(m, x, 64, 1, 28, 28, logits);      // eval mode
 *   nc_model_save(m, "model.safetensors");
 *   nc_trainer_destroy(t);  nc_model_destroy(m);  nc_context_destroy(ctx);
 *
 * Thread safety (docs/api.md, "Thread safety"): any number of threads may run
 * nc_model_forward, nc_model_forward_raw and nc_model_predict_loader on one model, or
 * on models of one context, at once; each thread reads its own nc_context_last_error. Calls that
 * change a model (training steps, loading or setting weights, metadata setters) wait
 * for the inference calls running on it and hold new ones back until done. Other
 * handles (trainers, loaders, datasets, ...) are used by one thread at a time.
 */
#ifndef NEURC_H
#define NEURC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(NC_BUILDING_LIBRARY)
#    define NC_API __declspec(dllexport)
#  else
#    define NC_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define NC_API __attribute__((visibility("default")))
#else
#  define NC_API
#endif

#define NC_VERSION_MAJOR 0
#define NC_VERSION_MINOR 1
#define NC_VERSION_PATCH 0
/** NC_VERSION_MAJOR * 10000 + NC_VERSION_MINOR * 100 + NC_VERSION_PATCH */
#define NC_VERSION (NC_VERSION_MAJOR * 10000 + NC_VERSION_MINOR * 100 + NC_VERSION_PATCH)

/* ------------------------------------------------------------------ status */

/* One table: name, value (never renumbered), description. */
#define NC_STATUS_TABLE(X)                                                        \
    X(NC_OK, 0, "success")                                                        \
    X(NC_ERR_INVALID_ARGUMENT, 1, "invalid argument")                             \
    X(NC_ERR_NULL, 2, "NULL handle or pointer")                                   \
    X(NC_ERR_OUT_OF_MEMORY, 3, "out of memory")                                   \
    X(NC_ERR_SHAPE, 4, "tensor shape mismatch")                                   \
    X(NC_ERR_UNSUPPORTED, 5, "unsupported by this build or backend")              \
    X(NC_ERR_IO, 6, "input/output error")                                         \
    X(NC_ERR_FORMAT, 7, "malformed or corrupt file")                              \
    X(NC_ERR_NOT_FOUND, 8, "not found")                                           \
    X(NC_ERR_NUMERIC, 9, "non-finite value")                                      \
    X(NC_ERR_BACKEND, 10, "backend failure")                                      \
    X(NC_ERR_STATE, 11, "call not valid in the current state")                    \
    X(NC_ERR_LIMIT, 12, "size limit exceeded")                                    \
    X(NC_ERR_CANCELLED, 13, "cancelled by the progress callback")                 \
    X(NC_ERR_TIMEOUT, 14, "timed out waiting for other processes")

#define NC__STATUS_ENUM(name, value, text) name = value,
typedef enum nc_status { NC_STATUS_TABLE(NC__STATUS_ENUM) } nc_status;
#undef NC__STATUS_ENUM

/// Static description of a status ("invalid argument"); never NULL, also for
/// unknown values ("unknown status").
NC_API const char *nc_status_str(nc_status status);

/// Run-time version as "MAJOR.MINOR.PATCH"; static storage.
NC_API const char *nc_version_string(void);
/// Run-time version as NC_VERSION; compare with the macro to detect a mismatch.
NC_API int nc_version(void);

/* ----------------------------------------------------------------- context */

typedef struct nc_context nc_context;
typedef struct nc_model nc_model;
typedef struct nc_trainer nc_trainer;
typedef struct nc_builder nc_builder;
typedef struct nc_loader nc_loader;  /* data loader (see "loader" below) */

typedef enum nc_backend_kind {
    NC_BACKEND_AUTO = 0,   /* the fastest available: cuda, then onednn, then ref */
    NC_BACKEND_REF = 1,    /* portable C11 + OpenMP kernels: the oracle */
    NC_BACKEND_ONEDNN = 2, /* oneDNN CPU primitives (build option `onednn`) */
    NC_BACKEND_CUDA = 3    /* cuDNN + own CUDA kernels (build option `cudnn`) */
} nc_backend_kind;

/** Precision policy of a context (docs/backends.md, "Dtype policy", op by op). */
typedef enum nc_precision {
    NC_PRECISION_FP32 = 0,      /* f32 storage and arithmetic everywhere (default) */
    NC_PRECISION_BF16 = 1,      /* bf16 mixed precision with PyTorch autocast's rules:
                                   activations stored in bf16, convolutions and linear
                                   layers on bf16 copies of the weights; batch-norm
                                   statistics, softmax, loss, gradients of parameters and
                                   the optimizer in f32 on f32 master weights */
    NC_PRECISION_BF16_MATH = 2  /* f32 storage, convolutions and linear layers computed in
                                   bf16 (oneDNN's math mode; what `bf16 = 1` selects) */
} nc_precision;

/** Allocator hooks: every host allocation the library makes goes through them,
 *  kernel scratch, JSON and libpng's / zlib's state included; only oneDNN's own
 *  internals and the C library's directory streams and qsort buffers do not
 *  (docs/reliability.md). A NULL from alloc makes the call fail with
 *  NC_ERR_OUT_OF_MEMORY, leaking nothing and leaving models, trainers and files as
 *  they were. The hooks are called from the calling thread only, except by a loader
 *  with workers, which calls them from several threads at once.
 *  alloc returns memory aligned to at least `align` (a power of two <= 4096) or NULL. */
typedef struct nc_allocator {
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
    void *user;
} nc_allocator;

/** Which algorithm a backend computes 3x3 convolutions with where it has a choice
 *  (docs/backends.md, "Convolution algorithms"). */
typedef enum nc_conv_algorithm {
    NC_CONV_ALGORITHM_AUTO = 0,     /* the backend's choice, per convolution and pass: on
                                       onednn, Winograd where the shape qualifies and it was
                                       measured faster (oneDNN's F(4x4,3x3) on AVX-512 CPUs,
                                       relative error about 1e-6 against direct's 1e-7; our
                                       F(2x2,3x3) for the forward on AVX2; see
                                       docs/backends.md), direct elsewhere (default) */
    NC_CONV_ALGORITHM_DIRECT = 1,   /* direct (or GEMM) convolutions only: the smallest
                                       rounding error, the choice of 0.1 */
    NC_CONV_ALGORITHM_WINOGRAD = 2  /* Winograd wherever the backend has a kernel for the
                                       shape (onednn: 3x3, stride 1, no dilation, no
                                       groups, f32; every pass on AVX-512, the forward on
                                       AVX2), direct elsewhere */
} nc_conv_algorithm;

typedef struct nc_context_options {
    size_t struct_size;      /* sizeof(nc_context_options), set by _init */
    nc_backend_kind backend; /* default NC_BACKEND_AUTO */
    int device;              /* GPU ordinal for NC_BACKEND_CUDA; default 0 */
    int num_threads;         /* CPU threads; 0 = all available cores */
    int deterministic;       /* 1 = deterministic algorithms only; default 0 */
    nc_allocator allocator;  /* all-NULL = the C library's posix_memalign/free */
    /* ---- added in 0.1 (struct_size tells whether it is set) */
    int bf16;                /* 1 = convolutions and linear layers compute in bfloat16
                                (fp32 storage and master weights); NC_BACKEND_ONEDNN on a
                                CPU with AVX512_BF16 only. Default 0. Kept for the ABI:
                                the same as precision = NC_PRECISION_BF16_MATH */
    /* ---- added after bf16 (struct_size tells whether it is set) */
    nc_precision precision;  /* default NC_PRECISION_FP32 (or BF16_MATH when bf16 = 1);
                                NC_PRECISION_BF16 runs where the backend supports bf16
                                values (ref; onednn on CPUs with AVX512_BF16); elsewhere a
                                plan fails naming the first node it cannot run */
    /* ---- added after precision (struct_size tells whether it is set) */
    nc_conv_algorithm conv_algorithm; /* default NC_CONV_ALGORITHM_AUTO; ref and cuda
                                         ignore it (their convolutions are direct / cuDNN's
                                         choice) */
} nc_context_options;

/// Fills `opt` with defaults and sets struct_size. NULL is ignored.
NC_API void nc_context_options_init(nc_context_options *opt);

/// Creates a context. `opt` may be NULL for defaults.
/// Returns NC_OK; NC_ERR_NULL if `out` is NULL; NC_ERR_INVALID_ARGUMENT for a bad
/// struct_size, thread count, backend, bf16, precision or conv_algorithm value, or bf16 = 1 with a
/// precision other than BF16_MATH; NC_ERR_UNSUPPORTED if the requested backend is
/// not built in, or BF16_MATH is asked of a backend other than oneDNN or on a CPU
/// without AVX512_BF16. With NC_BACKEND_AUTO and NC_PRECISION_BF16 the first backend
/// (cuda, onednn, ref) that supports bf16 values is chosen; NC_ERR_BACKEND if the backend cannot start;
/// NC_ERR_LIMIT when the process has no thread-local key left for the per-thread error
/// text (about 1,000 contexts alive at once: PTHREAD_KEYS_MAX); NC_ERR_OUT_OF_MEMORY.
/// The caller owns *out.
NC_API nc_status nc_context_create(const nc_context_options *opt, nc_context **out);

/// Destroys a context; NULL-safe. Models and trainers made from it must be
/// destroyed first.
NC_API void nc_context_destroy(nc_context *ctx);

/// The message of the calling thread's last failed call on this context (or on a
/// handle made from it), "" if that thread has none: each thread has its own, so a
/// failure in one thread never shows in another. Valid until the calling thread's
/// next call on the context. NULL ctx gives a static message.
NC_API const char *nc_context_last_error(const nc_context *ctx);

/// The backend actually chosen (never NC_BACKEND_AUTO); NC_BACKEND_REF for NULL.
NC_API nc_backend_kind nc_context_backend(const nc_context *ctx);

/// The context's precision policy (bf16 = 1 reads as NC_PRECISION_BF16_MATH);
/// NC_PRECISION_FP32 for NULL.
NC_API nc_precision nc_context_precision(const nc_context *ctx);

/// Name of a backend ("ref", "onednn", "cuda", "auto").
NC_API const char *nc_backend_name(nc_backend_kind kind);

/* ---------------------------------------------------- progress, cancellation */

/** What a long call is doing when it reports progress (docs/api.md, "Progress and
 *  cancellation"). */
typedef enum nc_phase {
    NC_PHASE_TRAIN = 1,    /* nc_trainer_train_epoch: after each step; done/total in batches */
    NC_PHASE_EVALUATE = 2, /* nc_model_predict_loader with a labels buffer: after each batch */
    NC_PHASE_PREDICT = 3,  /* nc_model_predict_loader without labels: after each batch */
    NC_PHASE_SAVE = 4,     /* nc_model_save, nc_trainer_save_checkpoint: bytes written */
    NC_PHASE_SCAN = 5      /* nc_dataset_open_folder (class folders listed),
                              nc_dataset_open_csv (rows checked; total -1),
                              nc_dataset_channel_stats (samples decoded) */
} nc_phase;

/** One progress report; valid during the callback only. */
typedef struct nc_progress {
    size_t struct_size;  /* sizeof(nc_progress) of the library: fields may be appended */
    nc_phase phase;
    int64_t done;        /* units finished so far (0 in the first report of a call) */
    int64_t total;       /* units of the whole call, -1 when not known in advance */
    int64_t epoch;       /* TRAIN, EVALUATE, PREDICT: the loader epoch; -1 otherwise */
    double loss;         /* TRAIN: mean loss of the steps this call ran so far; else NaN */
    double metric;       /* TRAIN, EVALUATE: top-1 accuracy so far (head-averaged
                            counts; EVALUATE for softmax heads); else NaN */
    const char *what;    /* the file being saved or the dataset being scanned; NULL else */
} nc_progress;

#define NC_PROGRESS_CONTINUE 0
#define NC_PROGRESS_STOP 1

/** Called by long calls on their calling thread: once at the start (done 0 or the
 *  resumed position) and after each unit of work. Return NC_PROGRESS_STOP to end the
 *  call at that point with NC_ERR_CANCELLED; what is left behind is consistent (each
 *  reporting call says what). It must not call into the library with the same handles. */
typedef int (*nc_progress_fn)(const nc_progress *progress, void *user);

/// Sets the context's progress callback (NULL = none, the default), used by every
/// reporting call on the context or on handles made from it (models, trainers,
/// datasets, loaders). Set it while no call runs on the context; when several threads
/// run reporting calls at once the callback is called from each of them. Returns NC_OK,
/// NC_ERR_NULL (ctx NULL).
NC_API nc_status nc_context_set_progress(nc_context *ctx, nc_progress_fn fn, void *user);

/* ------------------------------------------------------------------- model */

typedef enum nc_head_type {
    NC_HEAD_LINEAR = 0, /* Dropout(head_dropout) -> Linear(features, classes) */
    NC_HEAD_MLP = 1     /* Dropout 0.3 -> Linear(in,512) -> ReLU -> BatchNorm1d(512)
                           -> Dropout 0.5 -> Linear(512, classes) */
} nc_head_type;

typedef struct nc_model_options {
    size_t struct_size;   /* sizeof(nc_model_options), set by _init */
    const char *arch;     /* "resnet18", "resnet34", "resnet50", "resnet101",
                             "resnext50_32x4d", "resnext101_32x8d", "resnext",
                             "vgg11", "vgg13", "vgg16", "vgg19", "vgg16c" (the VGG
                             paper's configuration C), each also "_bn",
                             "densenet121", "densenet161", "densenet169",
                             "densenet201", "simple_cnn";
                             copied by nc_model_create. Default "resnet18". */
    int num_classes;      /* outputs per head; default 1000 */
    int in_channels;      /* input channels (1 gray, 3 RGB, 4 ...); default 3 */
    int num_heads;        /* parallel classifier heads sharing the backbone; default 1.
                             Logits are laid out head-major: [n][head][class]. */
    int cardinality;      /* ResNeXt groups ("resnext"; default 32) */
    int base_width;       /* ResNeXt width per group ("resnext"; default 4) */
    int blocks[4];        /* blocks per stage for "resnext"; 0 = {3,4,6,3} */
    int bottleneck;       /* "resnext": 1 = bottleneck blocks (default), 0 = basic */
    float block_dropout;  /* "resnext": dropout inside each residual block, before the
                             block's last convolution; default 0 */
    float head_dropout;   /* dropout before a linear head; default 0 */
    nc_head_type head;    /* default NC_HEAD_LINEAR */
    int small_input;      /* 1 = stem for small images (ResNet, DenseNet: 3x3 conv
                             stride 1 and no max pool; VGG: adaptive pool to 1x1 and
                             a 512-wide classifier); default 0 = torchvision's stem */
    int width;            /* "simple_cnn": channels of the first conv; default 32 */
    uint64_t seed;        /* initialisation seed; default 0 */
} nc_model_options;

/// Fills `opt` with the defaults above. NULL is ignored.
NC_API void nc_model_options_init(nc_model_options *opt);

/// Builds a built-in architecture with freshly initialised parameters (torchvision's
/// initialisation scheme, drawn from `seed`).
/// Returns NC_OK; NC_ERR_NULL (ctx, opt or out NULL); NC_ERR_NOT_FOUND (unknown arch);
/// NC_ERR_INVALID_ARGUMENT (bad struct_size, class/channel/head counts, cardinality,
/// width or dropout outside [0,1)); NC_ERR_OUT_OF_MEMORY. The caller owns *out.
NC_API nc_status nc_model_create(nc_context *ctx, const nc_model_options *opt, nc_model **out);

/// Destroys a model; NULL-safe. Trainers of the model must be destroyed first.
NC_API void nc_model_destroy(nc_model *model);

/// Runs the model in eval mode (batchnorm running statistics, no dropout).
/// x: host NCHW float32, n*c*h*w values, c must equal the model's input channels.
/// logits: n * nc_model_num_outputs() floats, written by the call.
/// Threads may call it on one model at once: each call runs on its own execution
/// plan from the model's pool (which keeps as many plans as calls ran at once), with
/// the weights shared; results equal those of serial calls bit for bit.
/// Returns NC_OK; NC_ERR_NULL; NC_ERR_SHAPE (wrong channel count, or an image too
/// small for the network); NC_ERR_INVALID_ARGUMENT (n,h,w < 1); NC_ERR_OUT_OF_MEMORY;
/// NC_ERR_BACKEND.
NC_API nc_status nc_model_forward(nc_model *model, const float *x, int n, int c, int h, int w,
                                  float *logits);

/* ---- raw input: camera frames as they come (docs/api.md, "Raw input") */

/** Element type of a raw input buffer (native byte order). */
typedef enum nc_elem_type {
    NC_ELEM_U8 = 1,   /* uint8_t */
    NC_ELEM_U16 = 2,  /* uint16_t, e.g. 10-, 12- or 16-bit camera data */
    NC_ELEM_F32 = 3   /* float */
} nc_elem_type;

/** Memory layout of a raw input buffer. */
typedef enum nc_layout {
    NC_LAYOUT_NCHW = 0,   /* data: image, channel, row, column (channels planar) */
    NC_LAYOUT_NHWC = 1,   /* data: image, row, column, channel (interleaved pixels) */
    NC_LAYOUT_PLANAR = 2  /* planes[c]: one buffer per channel (e.g. one file or camera
                             per channel), each image, row, column */
} nc_layout;

/** A described input buffer. Element (i, ch, y, x) is read at byte address
 *  base + i*stride_n + ch*stride_c + y*stride_h + x*stride_w, where base is `data`
 *  (NCHW, NHWC) or planes[ch] (PLANAR, stride_c unused). A stride of 0 means packed
 *  for the layout; strides may be negative (bottom-up rows) and need not be multiples
 *  of the element size. Values are scaled by x = ((float)v - lo) / range with
 *  lo = (float)min_value and range = (float)max_value - (float)min_value (not clamped),
 *  then, with normalize = 1, x = (x - mean[ch]) / std[ch] with the model's stored
 *  normalisation, all in float: the arithmetic of the PNG decoder (v / 255.0f,
 *  v / 65535.0f) and of nc_transform_add_normalize. */
typedef struct nc_input_desc {
    size_t struct_size;        /* sizeof(nc_input_desc), set by _init */
    nc_elem_type type;         /* default NC_ELEM_U8 */
    nc_layout layout;          /* default NC_LAYOUT_NCHW */
    int n, c, h, w;            /* images, channels (= the model's), rows, columns */
    const void *data;          /* NCHW, NHWC: element (0, 0, 0, 0); borrowed for the call */
    const void *const *planes; /* PLANAR: c pointers to element (0, ch, 0, 0) */
    int64_t stride_n, stride_c, stride_h, stride_w; /* bytes; 0 = packed */
    double min_value;          /* the value that maps to 0; default 0 */
    double max_value;          /* the value that maps to 1; 0 = the type's full range:
                                  255 (U8), 65535 (U16), 1 (F32); 4095 for 12-bit data */
    int normalize;             /* 1 = apply the model's stored mean/std (default; the
                                  model must have one), 0 = scaling only */
} nc_input_desc;

/// Fills `desc` with the defaults above (no data) and sets struct_size. NULL is ignored.
NC_API void nc_input_desc_init(nc_input_desc *desc);

/// nc_model_forward on a described raw buffer: converts and preprocesses it inside the
/// library (scaling, then the model's stored normalisation) without the caller making
/// a float copy, and writes n * nc_model_num_outputs() logits. The logits equal those
/// of nc_model_forward on the float32 NCHW array the formula of nc_input_desc gives,
/// bit for bit. Safe to call from several threads on one model like nc_model_forward
/// (the conversion buffer is the call's own). Returns NC_OK, NC_ERR_NULL (model, desc,
/// logits, data or a plane NULL), NC_ERR_INVALID_ARGUMENT (bad struct_size, type,
/// layout, sizes, stride_c with PLANAR, max_value == min_value or not finite, normalize
/// not 0/1), NC_ERR_NOT_FOUND (normalize = 1 and the model stores no normalisation),
/// NC_ERR_SHAPE (c is not the model's input channels, or an image too small),
/// NC_ERR_LIMIT (over 2^31 values), NC_ERR_OUT_OF_MEMORY, NC_ERR_BACKEND.
NC_API nc_status nc_model_forward_raw(nc_model *model, const nc_input_desc *desc, float *logits);

/// Number of trainable parameters (weights and biases, not buffers); 0 for NULL.
NC_API int64_t nc_model_num_params(const nc_model *model);
/// Outputs per sample: num_heads * num_classes; 0 for NULL.
NC_API int nc_model_num_outputs(const nc_model *model);
/// Input channels the model expects; 0 for NULL.
NC_API int nc_model_in_channels(const nc_model *model);
/// Number of heads (>= 1); 0 for NULL.
NC_API int nc_model_num_heads(const nc_model *model);

/// Writes a layer table (name, type, output shape for a 1 x C x h x w input,
/// parameter count) like torchsummary into buf (always NUL-terminated when size > 0).
/// *needed (may be NULL) receives the full length + 1, so a second call with a
/// larger buffer gets everything. Returns NC_OK, NC_ERR_NULL, NC_ERR_SHAPE (image
/// too small), NC_ERR_LIMIT (buf too small: truncated text was still written).
NC_API nc_status nc_model_summary(nc_model *model, int h, int w, char *buf, size_t size,
                                  size_t *needed);

/* Tensors of a model: trainable parameters and buffers (running_mean, running_var,
 * num_batches_tracked), named like torchvision's state_dict keys. */
typedef struct nc_tensor_info {
    const char *name;   /* borrowed: lives as long as the model */
    int ndim;           /* 0..4 */
    int64_t shape[4];
    int64_t numel;
    int trainable;      /* 1 = parameter, 0 = buffer */
} nc_tensor_info;

/// Number of named tensors (parameters and buffers); 0 for NULL.
NC_API int nc_model_num_tensors(const nc_model *model);
/// Describes tensor `index` (0 <= index < nc_model_num_tensors).
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (index out of range).
NC_API nc_status nc_model_tensor_info(const nc_model *model, int index, nc_tensor_info *info);
/// Copies tensor `name` (host float32, logical NCHW/OIHW order) into out[count].
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_NOT_FOUND, NC_ERR_SHAPE (count != numel).
NC_API nc_status nc_model_get_tensor(nc_model *model, const char *name, float *out, int64_t count);
/// Overwrites tensor `name` from data[count]; same statuses as nc_model_get_tensor.
NC_API nc_status nc_model_set_tensor(nc_model *model, const char *name, const float *data,
                                     int64_t count);

/// Saves parameters, buffers and metadata (architecture options, class names,
/// input normalisation) as one safetensors file, written atomically (temporary file
/// + rename). Returns NC_OK, NC_ERR_NULL, NC_ERR_IO (with the path and errno text),
/// NC_ERR_OUT_OF_MEMORY, NC_ERR_CANCELLED (the progress callback stopped it, phase
/// NC_PHASE_SAVE in bytes: the temporary file is removed, `path` is as it was).
NC_API nc_status nc_model_save(nc_model *model, const char *path);

/// Recreates a model from a file written by nc_model_save alone.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_IO (missing/unreadable), NC_ERR_FORMAT (not a
/// valid safetensors file, or no neurc metadata), NC_ERR_LIMIT (header over 100 MB),
/// NC_ERR_UNSUPPORTED (a dtype neurc does not read, e.g. U16 or F8), NC_ERR_SHAPE (a
/// tensor disagrees with the architecture), NC_ERR_NOT_FOUND (a tensor is missing),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_model_load(nc_context *ctx, const char *path, nc_model **out);

/** What nc_model_load_weights found. Counts always; names of the first few in `text`. */
typedef struct nc_load_report {
    size_t struct_size;
    int loaded;       /* tensors copied into the model */
    int missing;      /* model tensors absent from the file */
    int unexpected;   /* file tensors the model does not have */
    int mismatched;   /* same name, different shape (not loaded) */
    char text[1024];  /* "missing fc.bias; unexpected aux.weight; mismatched conv1.weight
                         F32 [64,3,7,7] in file vs [64,1,7,7] in model" (truncated) */
} nc_load_report;

/// Loads a safetensors file keyed like torchvision's state_dict (F32, F16, BF16, F64;
/// I64 for num_batches_tracked) into an existing model. strict = 1 fails with
/// NC_ERR_NOT_FOUND / NC_ERR_SHAPE when any key is missing, unexpected or mismatched,
/// leaving the model unchanged; strict = 0 loads what matches. `report` may be NULL.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_IO, NC_ERR_FORMAT, NC_ERR_LIMIT, NC_ERR_UNSUPPORTED,
/// NC_ERR_NOT_FOUND, NC_ERR_SHAPE, NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_model_load_weights(nc_model *model, const char *path, int strict,
                                       nc_load_report *report);

typedef enum nc_first_conv_adapt {
    NC_ADAPT_RGB_NORMAL = 0, /* channels 0..2 take the R, G, B weights, further channels
                                N(0, 0.01^2) (the Chlorella guide); 1 channel takes
                                R+G+B, 2 channels R and G */
    NC_ADAPT_RGB_MEAN = 1    /* every channel = the mean of the RGB weights times 3/c,
                                i.e. (R+G+B)/c (timm's convention): an input whose c
                                channels are alike keeps the RGB model's activations */
} nc_first_conv_adapt;

typedef struct nc_pretrained_options {
    size_t struct_size;
    int strict;                   /* 1 = every other key must match; default 0 */
    nc_first_conv_adapt adapt;    /* when the first conv's input channels differ */
    int keep_head;                /* 0 = tensors of a head whose shape differs keep
                                     their fresh initialisation (new classes/heads);
                                     default 0 */
    uint64_t seed;                /* for NC_ADAPT_RGB_NORMAL's new channels */
} nc_pretrained_options;

NC_API void nc_pretrained_options_init(nc_pretrained_options *opt);
/// Imports a torchvision state_dict (safetensors, see docs/format.md) into a model with
/// a possibly different in_channels, class count or head count: the first
/// convolution is adapted, the head is re-initialised where its shape differs, the
/// rest must match (strict) or is loaded where it matches; on any failure the model is
/// unchanged. opt NULL = defaults; report may be NULL. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (bad struct_size or adapt value), NC_ERR_IO, NC_ERR_FORMAT,
/// NC_ERR_LIMIT, NC_ERR_UNSUPPORTED, NC_ERR_SHAPE, NC_ERR_NOT_FOUND (strict, or a missing
/// head with keep_head), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_model_load_pretrained(nc_model *model, const char *path, const nc_pretrained_options *opt,
                                          nc_load_report *report);

/// Class names stored with the model (saved in the file's metadata). names may be
/// NULL to clear; count must equal num_classes otherwise. Strings are copied.
NC_API nc_status nc_model_set_class_names(nc_model *model, const char *const *names, int count);
/// Borrowed class name i, or NULL when none is set or i is out of range.
NC_API const char *nc_model_class_name(const nc_model *model, int i);
/// Per-channel input normalisation stored with the model (mean, std of length
/// in_channels); metadata only: nc_model_forward does not apply it.
NC_API nc_status nc_model_set_normalization(nc_model *model, const float *mean, const float *std);
/// Copies the stored normalisation; NC_ERR_NOT_FOUND when none is set.
NC_API nc_status nc_model_get_normalization(const nc_model *model, float *mean, float *std);
/// Stores a free-form string `value` under `key` in the model's metadata (saved in
/// model files and checkpoints as "user.<key>", read back by nc_model_load), e.g. the
/// input size or a calibrated threshold a program needs to use the model. Keys are
/// 1..63 characters of [A-Za-z0-9_.-]; value NULL removes the key. Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad key), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_model_set_info(nc_model *model, const char *key, const char *value);
/// The value stored under `key`, or NULL (also for NULL arguments). Valid until the
/// key is set again or the model is destroyed.
NC_API const char *nc_model_info(const nc_model *model, const char *key);

/// The model's context (borrowed); NULL for NULL.
NC_API nc_context *nc_model_context(const nc_model *model);

/* ------------------------------------------------------------- ONNX export */

/** How nc_model_export_onnx writes the inference graph (docs/onnx.md). */
typedef struct nc_onnx_options {
    size_t struct_size;   /* sizeof(nc_onnx_options), set by _init */
    int height, width;    /* input image size the graph is exported for (>= 1; no
                             default: nc-train records it as the info key
                             "image_size"). The batch dimension is always dynamic. */
    int opset;            /* ONNX opset, 13..17; default 13 */
    int split_heads;      /* 1 = one output per head, "logits_0" ... (N, classes) each;
                             default 0 = one output "logits" (N, heads*classes),
                             head-major as nc_model_forward */
    int normalize;        /* 1 = the graph takes unnormalised input and first applies
                             the model's stored mean/std ((x - mean) / std); default 0 =
                             the input is normalised by the caller, as for
                             nc_model_forward */
    int fold_batchnorm;   /* 1 = a batch norm right after a convolution (its only user)
                             is folded into the convolution's weight and bias; default
                             0 = BatchNormalization nodes with the stored statistics */
} nc_onnx_options;

/// Fills `opt` with the defaults above (height and width 0). NULL is ignored.
NC_API void nc_onnx_options_init(nc_onnx_options *opt);

/// Writes the model's inference graph (eval mode: running batch-norm statistics,
/// no dropout) as an ONNX model file: input "input" (batch, C, height, width)
/// float32, output "logits" (or one per head with split_heads), parameters as
/// initializers under their state_dict names, and the model's metadata (class names,
/// normalisation, heads, architecture, info keys) as metadata_props (docs/onnx.md).
/// The file is written atomically (temporary file + rename): on any failure `path`
/// is left as it was. opt may be NULL for the defaults, which need height and width.
/// Returns NC_OK; NC_ERR_NULL (model or path NULL); NC_ERR_INVALID_ARGUMENT (bad
/// struct_size, height/width < 1, opset outside 13..17); NC_ERR_STATE (normalize set
/// but the model stores no normalisation); NC_ERR_SHAPE (image too small for the
/// network); NC_ERR_LIMIT (over protobuf's 2 GB message limit);
/// NC_ERR_UNSUPPORTED (neurc built without ONNX support: meson option `onnx`);
/// NC_ERR_IO (with the path and errno text); NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_model_export_onnx(nc_model *model, const char *path, const nc_onnx_options *opt);

/* ----------------------------------------------------------------- builder */

/** A value in a graph under construction: the output of one layer. */
typedef int32_t nc_value;

/// Starts a graph whose input has `in_channels` channels (any batch and spatial
/// size). *input receives the input value. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT, NC_ERR_OUT_OF_MEMORY. The caller owns *out.
/// Builder calls below return the builder's first error again once one happened
/// ("sticky"), so a sequence of calls may be checked once at the end.
NC_API nc_status nc_builder_create(nc_context *ctx, int in_channels, nc_builder **out,
                                   nc_value *input);
NC_API void nc_builder_destroy(nc_builder *b);

/// 2-D convolution, square kernel. Creates "<name>.weight" (K, C/groups, k, k) and,
/// when bias, "<name>.bias" (K). Input must be 4-D; C and K divisible by groups.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad value, sizes or name
/// already used), NC_ERR_SHAPE, NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_builder_conv2d(nc_builder *b, const char *name, nc_value x, int out_channels,
                                   int kernel, int stride, int padding, int dilation, int groups,
                                   int bias, nc_value *out);
/// Batch normalisation over channels: BatchNorm2d for 4-D, BatchNorm1d for 2-D input
/// (PyTorch semantics: eps, momentum e.g. 1e-5, 0.1). Creates "<name>.weight",
/// ".bias", ".running_mean", ".running_var", ".num_batches_tracked".
NC_API nc_status nc_builder_batchnorm(nc_builder *b, const char *name, nc_value x, float eps,
                                      float momentum, nc_value *out);
NC_API nc_status nc_builder_relu(nc_builder *b, nc_value x, nc_value *out);
/// Max pooling (square window, implicit -inf padding, floor mode).
NC_API nc_status nc_builder_max_pool2d(nc_builder *b, nc_value x, int kernel, int stride,
                                       int padding, nc_value *out);
/// Average pooling (square window, zero padding counted, floor mode).
NC_API nc_status nc_builder_avg_pool2d(nc_builder *b, nc_value x, int kernel, int stride,
                                       int padding, nc_value *out);
/// Adaptive average pooling to out_h x out_w (PyTorch's bin boundaries).
NC_API nc_status nc_builder_adaptive_avg_pool2d(nc_builder *b, nc_value x, int out_h, int out_w,
                                                nc_value *out);
/// Element-wise sum of two values of identical shape.
NC_API nc_status nc_builder_add(nc_builder *b, nc_value a, nc_value c, nc_value *out);
/// Fully connected layer on a 2-D input (N, in): "<name>.weight" (out, in), ".bias".
NC_API nc_status nc_builder_linear(nc_builder *b, const char *name, nc_value x, int out_features,
                                   int bias, nc_value *out);
/// Inverted dropout with probability p in [0, 1) (identity in eval mode).
NC_API nc_status nc_builder_dropout(nc_builder *b, nc_value x, float p, nc_value *out);
/// Flattens (N, C, H, W) to (N, C*H*W). The spatial size must be fixed by the graph
/// (an adaptive average pool before it), so that C*H*W — and the width of a linear
/// layer after it — does not depend on the image size; NC_ERR_SHAPE otherwise.
NC_API nc_status nc_builder_flatten(nc_builder *b, nc_value x, nc_value *out);
/// Concatenates 1 to 256 values along dimension 1 (`torch.cat(xs, 1)`): 2-D values
/// (N, F_i) along features, or 4-D values (N, C_i, H, W) of one spatial size along
/// channels (DenseNet). Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (count,
/// a value that does not exist), NC_ERR_SHAPE (mixed ranks, fixed spatial sizes that
/// differ; sizes that depend on the image are checked when the model runs).
NC_API nc_status nc_builder_concat(nc_builder *b, const nc_value *xs, int count, nc_value *out);

/// Turns the graph into a model whose logits are `output` (2-D, N x num_heads*classes).
/// num_heads >= 1 divides the output width. Parameters are initialised from `seed`
/// (convolutions: Kaiming normal, fan_out; linear: PyTorch's default uniform; batchnorm:
/// weight 1, bias 0). The builder stays valid and may be destroyed afterwards.
/// Returns NC_OK, NC_ERR_NULL, the builder's sticky error, NC_ERR_INVALID_ARGUMENT
/// (output not 2-D, heads do not divide it), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_builder_finish(nc_builder *b, nc_value output, int num_heads, uint64_t seed,
                                   nc_model **out);

/* ----------------------------------------------------------------- trainer */

typedef enum nc_optimizer {
    NC_OPTIMIZER_SGD = 0,   /* torch.optim.SGD */
    NC_OPTIMIZER_ADAM = 1,  /* torch.optim.Adam (L2 weight decay added to the gradient) */
    NC_OPTIMIZER_ADAMW = 2  /* torch.optim.AdamW (decoupled weight decay) */
} nc_optimizer;

typedef enum nc_loss_kind {
    NC_LOSS_CROSS_ENTROPY = 0,  /* softmax cross-entropy per head; labels n x heads */
    NC_LOSS_BCE_WITH_LOGITS = 1 /* multi-label: labels n x heads x classes, each 0/1 */
} nc_loss_kind;

typedef struct nc_trainer_options {
    size_t struct_size;  /* sizeof(nc_trainer_options), set by _init */
    float lr;            /* default 0.01 */
    float momentum;      /* default 0.9 */
    float dampening;     /* default 0 */
    float weight_decay;  /* L2 added to gradients (torch.optim.SGD); default 0 */
    int nesterov;        /* default 0 */
    uint64_t seed;       /* dropout stream; default 0 */
    /* ---- optimizer (fields below added in 0.1; struct_size tells which are set) */
    nc_optimizer optimizer;     /* default NC_OPTIMIZER_SGD */
    float beta1, beta2, eps;    /* Adam/AdamW: defaults 0.9, 0.999, 1e-8 */
    int no_decay_norm_bias;     /* 1 = no weight decay on biases and norm weights (all
                                   groups); default 0 (torch applies it to everything) */
    /* ---- loss */
    nc_loss_kind loss;          /* default NC_LOSS_CROSS_ENTROPY */
    float label_smoothing;      /* cross-entropy, in [0, 1); default 0 */
    const float *class_weights; /* cross-entropy: num_classes values (shared by heads) or
                                   num_heads*num_classes; NULL = none; copied */
    int num_class_weights;
    const float *head_weights;  /* num_heads values: loss = sum_h w_h * loss_h; NULL = 1s */
    int32_t ignore_label;       /* cross-entropy label to skip (torch ignore_index);
                                   default -100 */
    const float *pos_weight;    /* BCE: num_heads*num_classes values; NULL = 1s; copied */
    /* ---- step control */
    int accumulation_steps;     /* micro-batches per update (loss averaged over them, as
                                   torch with loss / k); default 1 */
    float clip_grad_norm;       /* clip the global L2 norm of the gradients to this
                                   (torch.nn.utils.clip_grad_norm_); 0 = off */
    int max_nonfinite;          /* non-finite losses/gradients in a row before
                                   NC_ERR_NUMERIC; each one before that skips its update
                                   and reports skipped = 1; default 5 */
} nc_trainer_options;

/** Per-step results. */
typedef struct nc_step_stats {
    float loss;       /* mean over the batch of the softmax cross-entropy, summed over heads */
    int correct;      /* top-1 hits, counted over samples x heads */
    int total;        /* samples x heads, not counting ignored labels */
    int skipped;      /* 1 when the update was skipped for a non-finite loss or gradient */
    int updated;      /* 1 when this call applied an optimizer update (with accumulation
                         only every k-th call does) */
    float grad_norm;  /* global L2 norm of the gradients before clipping (0 if no update) */
    float lr;         /* learning rate of the default group used by the update */
} nc_step_stats;

/// Fills `opt` with defaults. NULL is ignored.
NC_API void nc_trainer_options_init(nc_trainer_options *opt);

/// Creates a trainer (SGD with momentum and weight decay, matching torch.optim.SGD)
/// for `model`. opt NULL = defaults. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (negative lr/momentum/decay, nesterov without momentum),
/// NC_ERR_OUT_OF_MEMORY. The caller owns *out; it must be destroyed before the model.
NC_API nc_status nc_trainer_create(nc_model *model, const nc_trainer_options *opt,
                                   nc_trainer **out);
NC_API void nc_trainer_destroy(nc_trainer *trainer);

/// One training step in train mode: forward, softmax cross-entropy per head (labels:
/// n * num_heads int32, head-major per sample, each in [0, num_classes)), backward,
/// SGD update. A non-finite loss skips the update and returns NC_ERR_NUMERIC
/// (out->skipped = 1). `out` may be NULL.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_SHAPE, NC_ERR_INVALID_ARGUMENT (label out of
/// range, n < 1), NC_ERR_NUMERIC, NC_ERR_OUT_OF_MEMORY, NC_ERR_BACKEND.
NC_API nc_status nc_trainer_step(nc_trainer *trainer, const float *x, const int32_t *labels, int n,
                                 int c, int h, int w, nc_step_stats *out);

/** What nc_trainer_train_epoch did. */
typedef struct nc_epoch_stats {
    size_t struct_size;  /* sizeof(nc_epoch_stats); set by the caller (nc_epoch_stats_init) */
    int64_t batches;     /* batches of the epoch consumed so far, the skipped ones included:
                            the nc_checkpoint_info.batch to save for a resume */
    int64_t steps;       /* nc_trainer_step calls this call made */
    int64_t samples;     /* samples of those steps */
    int64_t skipped;     /* steps whose update was skipped for a non-finite value */
    double loss;         /* mean loss per sample over the steps not skipped (NaN if none) */
    double accuracy;     /* top-1 hits / labels counted over those steps (NaN if none) */
    int finished;        /* 1 when the loader's epoch ended (then batches = its batch count) */
} nc_epoch_stats;

/// Zeroes `s`, loss and accuracy NaN, struct_size set. NULL is ignored.
NC_API void nc_epoch_stats_init(nc_epoch_stats *s);

/// Trains over epoch `epoch` of `loader` (nc_loader_start_epoch(loader, epoch), then
/// one nc_trainer_step per batch), skipping its first `start_batch` batches: those a
/// previous call already trained before it was cancelled (nc_checkpoint_info.batch of
/// a checkpoint saved then). Reports NC_PHASE_TRAIN progress to the context's callback
/// once before the first step (done = start_batch) and after each step (running loss
/// and accuracy of this call). When the callback stops it, the call returns
/// NC_ERR_CANCELLED between two steps: model and trainer hold every step taken
/// (never half a step), `out` says how far the epoch got, and saving a checkpoint with
/// info.batch = out->batches and calling again with start_batch = out->batches later
/// (also in another process, after nc_trainer_load_checkpoint) continues the epoch as
/// if uninterrupted. With a communicator (nc_trainer_set_comm) every rank must stop at
/// the same batch. `out` may be NULL; otherwise its struct_size must be set. Returns
/// NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (epoch or start_batch < 0, bad
/// struct_size), NC_ERR_SHAPE, the step's and the loader's errors (prefixed with the
/// batch), NC_ERR_CANCELLED.
NC_API nc_status nc_trainer_train_epoch(nc_trainer *trainer, nc_loader *loader, int64_t epoch, int64_t start_batch,
                                        nc_epoch_stats *out);

/// Changes the learning rate of the "default" group from the next step on. With a
/// schedule attached, `lr` becomes the group's base rate and the schedule's rates are
/// computed from it from the next update on (the schedule keeps its position).
NC_API nc_status nc_trainer_set_lr(nc_trainer *trainer, float lr);
/// Steps taken so far.
NC_API int64_t nc_trainer_num_steps(const nc_trainer *trainer);

/// Adds a parameter group: every trainable tensor whose name starts with one of the
/// comma-separated `prefixes` (e.g. "conv1,bn1,layer1" or "fc") and is not yet in a
/// named group, with its own lr and weight decay. Tensors in no group use the
/// options' lr and weight_decay (group "default"). Call before the first step.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad lr/decay, duplicate name),
/// NC_ERR_NOT_FOUND (a prefix matches no tensor), NC_ERR_STATE (after the first step).
NC_API nc_status nc_trainer_add_group(nc_trainer *trainer, const char *name, const char *prefixes, float lr,
                                      float weight_decay);
/// Freezes (1) or unfreezes (0) a group ("default" included) at any time: frozen
/// tensors get no update (their optimizer state is kept). Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_NOT_FOUND.
NC_API nc_status nc_trainer_freeze_group(nc_trainer *trainer, const char *name, int frozen);
/// Sets (and reads back) a group's current learning rate. Setting it with a schedule
/// attached sets the base rate the schedule scales, as nc_trainer_set_lr does.
NC_API nc_status nc_trainer_set_group_lr(nc_trainer *trainer, const char *name, float lr);
NC_API nc_status nc_trainer_group_lr(const nc_trainer *trainer, const char *name, float *lr);

/* ------------------------------------------- weight average, early stopping */

/** An exponential moving average of a model's weights. */
typedef struct nc_ema nc_ema;

/// Starts an average of every float tensor of `model` (parameters and running
/// statistics, as timm's ModelEmaV2) from its current values: after each update call
/// nc_ema_update, ema = decay * ema + (1 - decay) * weights. The model must outlive it.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (decay not in [0, 1)),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_ema_create(nc_model *model, float decay, nc_ema **out);
/// Destroys the average; NULL-safe. Swap back first if it is swapped in.
NC_API void nc_ema_destroy(nc_ema *ema);
/// Folds the model's current weights into the average (not while swapped in:
/// NC_ERR_STATE).
NC_API nc_status nc_ema_update(nc_ema *ema);
/// Exchanges the model's weights with the average (O(1)): evaluate or save the
/// averaged model, then swap again to continue training. Returns NC_OK, NC_ERR_NULL.
NC_API nc_status nc_ema_swap(nc_ema *ema);
/// 1 while the average is swapped into the model.
NC_API int nc_ema_swapped(const nc_ema *ema);

/** Early stopping on a monitored metric, keeping the best weights. */
typedef struct nc_early_stopping nc_early_stopping;

/// mode_max = 1 when a larger metric is better; an epoch improves when its metric
/// beats the best by more than min_delta (PyTorch Lightning's EarlyStopping);
/// `patience` epochs without improvement ask to stop. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (patience < 0, min_delta < 0), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_early_stopping_create(nc_model *model, int mode_max, int patience, float min_delta,
                                          nc_early_stopping **out);
NC_API void nc_early_stopping_destroy(nc_early_stopping *es);
/// Reports an epoch's metric. *improved (may be NULL) = 1 when it is the new best (the
/// model's weights are copied); *stop (may be NULL) = 1 once `patience` epochs in a row
/// did not improve. A NaN/inf metric is NC_ERR_NUMERIC and counts as nothing.
NC_API nc_status nc_early_stopping_update(nc_early_stopping *es, float metric, int *improved, int *stop);
/// Copies the best weights back into the model. NC_ERR_STATE before any improvement.
NC_API nc_status nc_early_stopping_restore_best(nc_early_stopping *es);
/// The best metric so far (NaN before the first update); NaN for NULL.
NC_API float nc_early_stopping_best(const nc_early_stopping *es);

/* ---------------------------------------------------------------- schedules */

typedef enum nc_schedule_kind {
    NC_SCHEDULE_CONSTANT = 0,    /* lr = base */
    NC_SCHEDULE_STEP = 1,        /* torch StepLR(step_size, gamma) */
    NC_SCHEDULE_MULTISTEP = 2,   /* torch MultiStepLR(milestones, gamma) */
    NC_SCHEDULE_EXPONENTIAL = 3, /* torch ExponentialLR(gamma) */
    NC_SCHEDULE_COSINE = 4,      /* linear warmup (LinearLR from warmup_start_factor over
                                    warmup_steps) then CosineAnnealingLR(t_max, eta_min) */
    NC_SCHEDULE_PLATEAU = 5      /* torch ReduceLROnPlateau */
} nc_schedule_kind;

typedef struct nc_schedule_options {
    size_t struct_size;
    nc_schedule_kind kind;       /* default NC_SCHEDULE_CONSTANT */
    int step_size;               /* STEP; default 30 */
    float gamma;                 /* STEP, MULTISTEP, EXPONENTIAL; default 0.1 */
    const int *milestones;       /* MULTISTEP, increasing; copied */
    int num_milestones;
    int t_max;                   /* COSINE: steps of the cosine part; default 100 */
    float eta_min;               /* COSINE: default 0 */
    int warmup_steps;            /* COSINE: default 0 */
    float warmup_start_factor;   /* COSINE: default 1/3 (torch LinearLR) */
    int mode_max;                /* PLATEAU: 1 = metric should rise; default 0 (fall) */
    float factor;                /* PLATEAU: default 0.1 */
    int patience;                /* PLATEAU: default 10 */
    float threshold;             /* PLATEAU: default 1e-4 */
    int threshold_abs;           /* PLATEAU: 1 = 'abs' threshold mode; default 0 ('rel') */
    int cooldown;                /* PLATEAU: default 0 */
    float min_lr;                /* PLATEAU: default 0 */
    float plateau_eps;           /* PLATEAU: default 1e-8 */
} nc_schedule_options;

/** A learning-rate schedule: a pure function of its position (and, for PLATEAU, of
 *  the metrics it was given), applied to any number of groups' base rates. */
typedef struct nc_schedule nc_schedule;

NC_API void nc_schedule_options_init(nc_schedule_options *opt);
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (with the field named),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_schedule_create(nc_context *ctx, const nc_schedule_options *opt, nc_schedule **out);
NC_API void nc_schedule_destroy(nc_schedule *s);
/// One scheduler.step() (per epoch or per batch, as the caller chooses); `metric` is
/// used by PLATEAU only (a non-finite metric is NC_ERR_NUMERIC there).
NC_API nc_status nc_schedule_step(nc_schedule *s, float metric);
/// The learning rate now for a group whose initial rate is base_lr; for PLATEAU the
/// rate of each base_lr is tracked separately (as torch tracks each group).
NC_API float nc_schedule_lr(nc_schedule *s, float base_lr);
/// Steps taken so far.
NC_API int64_t nc_schedule_position(const nc_schedule *s);
/// Makes the trainer take every group's lr from the schedule (from its group's
/// initial lr) before each update; NULL detaches. The schedule must outlive the
/// trainer or be detached.
NC_API nc_status nc_trainer_set_schedule(nc_trainer *trainer, nc_schedule *s);

/* ---------------------------------------------------------- data parallel */

/** A communicator between training processes (ranks), for data-parallel training
 *  with PyTorch DDP's semantics (docs/distributed.md). Opaque; no MPI type crosses
 *  the ABI. */
typedef struct nc_comm nc_comm;
/// A communicator over MPI_COMM_WORLD (duplicated) of an MPI program: the caller
/// initialises MPI (MPI_Init) before and finalises it after destroying every
/// communicator. Collective: every rank calls it. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_STATE (MPI not initialised), NC_ERR_UNSUPPORTED (built without MPI),
/// NC_ERR_BACKEND (an MPI call failed), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_comm_create_mpi(nc_context *ctx, nc_comm **out);
/// A communicator between GPU ranks over NCCL (build feature `nccl`): one rank per
/// GPU, `device` its CUDA device (-1: the rank's index on its node, modulo the
/// devices); NCCL's unique id goes from rank 0 to the others over MPI_COMM_WORLD, so
/// MPI must be initialised as for nc_comm_create_mpi. Collective. Its collectives
/// reduce GPU memory, so nc_trainer_set_comm accepts it only on the CUDA backend
/// (not built yet: NC_ERR_UNSUPPORTED on the CPU backends); the nc_comm_* calls take
/// host memory as everywhere. UNTESTED: built and linked, never yet run on a GPU
/// (docs/distributed.md). Returns NC_OK, NC_ERR_NULL, NC_ERR_STATE (MPI not
/// initialised), NC_ERR_UNSUPPORTED (built without NCCL, or no CUDA device),
/// NC_ERR_INVALID_ARGUMENT (no such device), NC_ERR_TIMEOUT, NC_ERR_BACKEND (a
/// CUDA, NCCL or MPI call failed), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_comm_create_nccl(nc_context *ctx, int device, nc_comm **out);
/// NULL-safe. Detach it from every trainer first.
NC_API void nc_comm_destroy(nc_comm *comm);
/// This process's rank (0 .. size-1), and the number of ranks; -1 and 0 for NULL.
NC_API int nc_comm_rank(const nc_comm *comm);
NC_API int nc_comm_size(const nc_comm *comm);
/// How long any collective of `comm` (this one's and the trainers' using it) waits
/// for the other ranks before it gives up: `seconds` > 0, INFINITY for no limit;
/// the default is 1800 (torch.distributed's 30 minutes: rank 0 may evaluate alone
/// while the others wait). A collective that times out returns NC_ERR_TIMEOUT with a
/// message naming the collective, the rank and the timeout; the communicator is then
/// unusable (every later call returns NC_ERR_STATE) and the program should end the
/// job (MPI_Abort; nc-train does). Local: no other rank is involved. Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (seconds <= 0 or NaN).
NC_API nc_status nc_comm_set_timeout(nc_comm *comm, double seconds);
/// The timeout in seconds (0 for NULL).
NC_API double nc_comm_timeout(const nc_comm *comm);
/// Waits for every rank. Returns NC_OK, NC_ERR_NULL, NC_ERR_TIMEOUT, NC_ERR_STATE
/// (after an earlier failure), NC_ERR_BACKEND.
NC_API nc_status nc_comm_barrier(nc_comm *comm);
/// values[i] = the sum over ranks of values[i], on every rank (metrics, counts).
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (count < 0), NC_ERR_TIMEOUT,
/// NC_ERR_STATE (after an earlier failure), NC_ERR_BACKEND.
NC_API nc_status nc_comm_allreduce_sum(nc_comm *comm, double *values, int64_t count);
/// Makes the trainer data-parallel over `comm` (collective; NULL detaches): rank 0's
/// parameters and buffers are copied to every rank now; from then on each update
/// averages the gradients over the ranks (in buckets of 25 MB, last layers first),
/// rank 0's batch-norm buffers are copied to every rank before each forward (DDP's
/// broadcast_buffers), and the step's loss, accuracy counts and the non-finite skip
/// are the same on every rank (the loss is the mean over ranks). Each rank passes its
/// own part of the global batch to nc_trainer_step. The communicator must outlive
/// the trainer or be detached. Returns NC_OK, NC_ERR_NULL, NC_ERR_STATE (the comm
/// belongs to another context, or it is unusable after a failure), NC_ERR_TIMEOUT,
/// NC_ERR_BACKEND, NC_ERR_OUT_OF_MEMORY. nc_trainer_step then also returns
/// NC_ERR_TIMEOUT or NC_ERR_STATE when a rank dies or hangs (nc_comm_set_timeout).
NC_API nc_status nc_trainer_set_comm(nc_trainer *trainer, nc_comm *comm);
/// Synchronised batch norm (torch.nn.SyncBatchNorm) for a data-parallel trainer:
/// every training batch norm normalises with the mean and variance of the whole
/// global batch (the per-channel sums all-reduced in the forward pass, and the sums
/// of its gradient in the backward pass), so N ranks x b/N samples train as one
/// process x b. Off (0) by default: each rank's own batch statistics, as DDP. Every
/// rank must set the same. Backends: ref (f32, bf16) and onednn (f32); another
/// makes nc_trainer_step return NC_ERR_UNSUPPORTED. Returns NC_OK, NC_ERR_NULL.
NC_API nc_status nc_trainer_set_sync_batchnorm(nc_trainer *trainer, int enable);
/// Overlap of the gradient all-reduce with the backward pass (on by default): a
/// 25 MB bucket's all-reduce starts as soon as the backward pass has produced every
/// gradient in it and progresses between the later layers; off (0), every bucket
/// starts after the backward pass. The results are identical either way. Every rank
/// must set the same. Returns NC_OK, NC_ERR_NULL.
NC_API nc_status nc_trainer_set_grad_overlap(nc_trainer *trainer, int enable);

/* -------------------------------------------------------------- checkpoints */

/** Where training stands, stored in a checkpoint with the trainer's state. */
typedef struct nc_checkpoint_info {
    size_t struct_size;     /* sizeof(nc_checkpoint_info), set by _init */
    int64_t epoch;          /* epochs completed (or the epoch in progress) */
    int64_t batch;          /* batches of that epoch already consumed (loader position) */
    double best_metric;     /* best monitored metric so far (NaN = none) */
    int64_t best_epoch;
} nc_checkpoint_info;
/// Fills `info` with zeros, best_metric NaN, struct_size set. NULL is ignored.
NC_API void nc_checkpoint_info_init(nc_checkpoint_info *info);
/// Saves the whole training state in one safetensors file, written atomically: the
/// model (as nc_model_save: it also loads with nc_model_load), optimizer moments,
/// per-tensor step counts, groups (lr, base lr, decay, frozen), trainer counters
/// (steps, updates, accumulation, non-finite run; the RNG is counter-based, so the
/// step count is its state), a partly accumulated gradient (when saved between the
/// micro-batches of one update), the attached schedule's options and state, the info
/// (NULL = as nc_checkpoint_info_init) and the trainer options. The file is written
/// to "<path>.tmp.XXXXXX" and renamed over `path`, so `path` always holds a whole
/// checkpoint; a writer killed mid-write can leave such a temporary file behind (it
/// is never read; delete it). Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT
/// (bad info->struct_size), NC_ERR_IO, NC_ERR_OUT_OF_MEMORY, NC_ERR_BACKEND,
/// NC_ERR_CANCELLED (progress callback, NC_PHASE_SAVE: `path` keeps the previous
/// checkpoint, no temporary file is left).
NC_API nc_status nc_trainer_save_checkpoint(nc_trainer *trainer, const char *path, const nc_checkpoint_info *info);
/// Restores a trainer (made for the same model architecture, optimizer and groups)
/// from a checkpoint: model tensors, optimizer state, counters, groups' rates and
/// frozen flags, the attached schedule's state (if one is attached now and one was
/// saved; it must be of the same kind), and *info (may be NULL). Trainer options other
/// than the optimizer are kept as the trainer was created (the saved ones are for
/// reference). Nothing changes on failure. Returns NC_OK, NC_ERR_NULL, NC_ERR_IO,
/// NC_ERR_FORMAT (not a checkpoint, or a different optimizer/groups/architecture/
/// schedule kind, message says which), NC_ERR_SHAPE, NC_ERR_NOT_FOUND,
/// NC_ERR_INVALID_ARGUMENT (bad info->struct_size), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_trainer_load_checkpoint(nc_trainer *trainer, const char *path, nc_checkpoint_info *info);


/* ------------------------------------------------------------------ metrics */

/** Classification metrics of one head, computed once from logits and labels. */
typedef struct nc_metrics nc_metrics;

#define NC_METRICS_MACRO (-1)     /* class argument: unweighted mean over classes */
#define NC_METRICS_WEIGHTED (-2)  /* class argument: mean weighted by class support */

/// Computes a head's metrics: sample i's logits are logits[i*logit_stride ...
/// + num_classes) (softmax is applied; logit_stride 0 = num_classes) and its label
/// labels[i*label_stride] (0 = 1); samples labelled ignore_label are skipped. For head
/// h of a model with H heads of K classes: logits + h*K, stride H*K, labels + h,
/// stride H. Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (a label out of range,
/// num_classes < 2, n < 0, logit_stride < num_classes, label_stride < 0),
/// NC_ERR_NUMERIC (a non-finite logit of a counted sample), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_metrics_compute(nc_context *ctx, const float *logits, int logit_stride, const int32_t *labels,
                                    int label_stride, int64_t n, int num_classes, int32_t ignore_label,
                                    nc_metrics **out);
/// All samples ignored (or n = 0) gives a valid handle with count 0. The accessors
/// below return 0 (integers) or NaN (rates) for a NULL handle or an out-of-range
/// argument, and are O(K^2) at most (ECE: O(count)); the handle owns its memory.
NC_API void nc_metrics_destroy(nc_metrics *m);
NC_API int64_t nc_metrics_count(const nc_metrics *m);          /* samples counted */
NC_API int nc_metrics_num_classes(const nc_metrics *m);
/// Confusion matrix entry: samples of class `truth` predicted as `pred` (top-1: the
/// first maximum logit, as np.argmax).
NC_API int64_t nc_metrics_confusion(const nc_metrics *m, int truth, int pred);
/// Top-k accuracy, as sklearn's top_k_accuracy_score: the true class y is a hit when
/// #{j: z_j > z_y} + #{j > y: z_j == z_y} < k (equal scores rank the higher class
/// index first), so with tied logits top_k(1) may differ from the confusion matrix's
/// diagonal. k >= num_classes gives 1; k < 1 or count 0 gives NaN.
NC_API double nc_metrics_top_k(const nc_metrics *m, int k);
/// Precision, recall and F-beta (beta >= 0, finite) of class `cls` (0 when undefined,
/// as sklearn's zero_division=0), or their averages: NC_METRICS_MACRO over the classes
/// that occur in the truth or the top-1 predictions (sklearn's default labels; 0 when
/// none), NC_METRICS_WEIGHTED by the number of true samples of each class.
NC_API double nc_metrics_precision(const nc_metrics *m, int cls);
NC_API double nc_metrics_recall(const nc_metrics *m, int cls);       /* = per-class accuracy */
NC_API double nc_metrics_fbeta(const nc_metrics *m, int cls, double beta);
/// Mean recall over the classes that occur in the truth (sklearn drops the others);
/// NaN when count is 0.
NC_API double nc_metrics_balanced_accuracy(const nc_metrics *m);
/// One-vs-rest ROC-AUC of class `cls` on the softmax probabilities (ties get the mean
/// rank: Mann-Whitney U, equal to sklearn's roc_auc_score), or NC_METRICS_MACRO /
/// NC_METRICS_WEIGHTED (weights: true samples) over the classes where it is defined;
/// NaN when the class has no positive or no negative sample (or no class has both).
NC_API double nc_metrics_roc_auc(const nc_metrics *m, int cls);
/// Mean cross-entropy of the softmax probabilities (sklearn's log_loss), in double
/// from the logits, each -log p clipped to [-log(1 - eps), -log(eps)], eps =
/// DBL_EPSILON (sklearn 1.2's clip for float64); NaN when count is 0.
NC_API double nc_metrics_log_loss(const nc_metrics *m);
/// Expected calibration error of the top-1 confidence c over `bins` equal-width bins:
/// sum_b |B_b|/n * |accuracy(B_b) - confidence(B_b)|, with c in bin
/// min(floor(c * bins), bins - 1) (bins [lo, hi), the last one closed). NaN when bins
/// < 1 or count is 0.
NC_API double nc_metrics_ece(const nc_metrics *m, int bins);

/// Temperature scaling: the T > 0 minimising the mean cross-entropy of logits / T
/// (Guo et al. 2017), fitted on validation logits (layout as nc_metrics_compute) by a
/// safeguarded Newton iteration on 1/T (the loss is convex in 1/T), in double. The
/// result is clamped to [1e-3, 1e3]: separable data (loss falls as T -> 0) gives 1e-3,
/// logits no better than uniform give 1e3. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (as nc_metrics_compute, or every sample ignored),
/// NC_ERR_NUMERIC (non-finite logits).
NC_API nc_status nc_calibrate_temperature(nc_context *ctx, const float *logits, int logit_stride,
                                          const int32_t *labels, int label_stride, int64_t n, int num_classes,
                                          int32_t ignore_label, float *temperature);

/** Counts and rates of a binary decision "score >= threshold". */
typedef struct nc_binary_stats {
    int64_t tp, fp, tn, fn;
    double precision, recall, fbeta;  /* 0 when undefined */
} nc_binary_stats;

typedef enum nc_threshold_rule {
    NC_THRESHOLD_MAX_FBETA = 0,        /* the threshold with the highest F-beta */
    NC_THRESHOLD_TARGET_PRECISION = 1  /* the lowest threshold whose precision >= target
                                          (highest recall among them) */
} nc_threshold_rule;

/// Chooses a decision threshold for one class from scores[n] (e.g. its softmax
/// probability) and positive[n] (1 = the sample is of that class, 0 = not):
/// `value` is beta for NC_THRESHOLD_MAX_FBETA, the target precision otherwise. The
/// threshold is one of the scores; *at (may be NULL) gets the stats it gives on this
/// data (F-beta with beta = 1 for TARGET_PRECISION). Equal F-beta: the higher
/// threshold wins. Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (n < 1, a NaN
/// score, a `positive` not 0/1, beta < 0 or not finite, target outside [0, 1]),
/// NC_ERR_NOT_FOUND (no threshold reaches the target precision), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_threshold_select(nc_context *ctx, const float *scores, const int32_t *positive, int64_t n,
                                     nc_threshold_rule rule, double value, float *threshold, nc_binary_stats *at);
/// The stats of "score >= threshold" on (held-out) data, F-beta with `beta`. Returns
/// NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (as nc_threshold_select, n < 0, a NaN
/// threshold).
NC_API nc_status nc_threshold_apply(nc_context *ctx, const float *scores, const int32_t *positive, int64_t n,
                                    float threshold, double beta, nc_binary_stats *out);

/// Per-label ROC-AUC of a multi-label (sigmoid) model, the CheXNet metric: output k of
/// sample i has the logit logits[i*num_labels + k] and the truth labels[i*num_labels +
/// k] (0 or 1), the layout nc_trainer_step takes for NC_LOSS_BCE_WITH_LOGITS with one
/// head. auc[k] (num_labels values) is the area under label k's ROC curve, computed
/// in double as the Mann-Whitney U statistic with the mean rank for ties (sklearn's
/// roc_auc_score on that column); ranking the logits equals ranking their sigmoid
/// probabilities. NaN when label k has no positive or no negative sample.
/// *mean_auc (may be NULL) gets the mean over the labels where it is defined (NaN when
/// none is). Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (n < 0, num_labels <
/// 1, a label not 0 or 1: the message names sample and label), NC_ERR_NUMERIC (a
/// non-finite logit), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_multilabel_roc_auc(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n,
                                       int num_labels, double *auc, double *mean_auc);

/* ------------------------------------------------------------ evaluation run */

/// Runs `model` in evaluation mode over one epoch (`epoch`) of `loader` and stores
/// every sample's logits (row i: nc_model_num_outputs values, head-major) and labels
/// (row i: the batch's `heads` labels) in loader order; `capacity` is the number of
/// rows the buffers hold (labels may be NULL). *count gets the rows written. The
/// loader's batches must match the model's input channels. Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (capacity too small: nothing beyond it is
/// written, the message gives the size needed; or a negative capacity or epoch),
/// NC_ERR_SHAPE, the loader's errors (decode failures name the file; the loader
/// reports into its dataset's context, and when that is not the model's, the model's
/// context says so), NC_ERR_OUT_OF_MEMORY, NC_ERR_BACKEND, NC_ERR_CANCELLED (the
/// progress callback stopped it, phase NC_PHASE_EVALUATE when labels is given, else
/// NC_PHASE_PREDICT, after each batch: *count rows are written and valid; the loader
/// is left mid-epoch, its next nc_loader_start_epoch starts afresh).
NC_API nc_status nc_model_predict_loader(nc_model *model, nc_loader *loader, int64_t epoch, float *logits,
                                         int32_t *labels, int64_t capacity, int64_t *count);

/* ----------------------------------------------------------------- saliency */

/** Explanations of a model's decisions: Grad-CAM at a chosen layer and the gradient of
 *  a class score with respect to the input (docs/api.md, "Saliency"). Holds an
 *  eval-mode copy of the model (batch norms folded into per-channel affine layers,
 *  dropout off) and its plan; used by one thread at a time. */
typedef struct nc_saliency nc_saliency;

/// Prepares saliency maps for `model` at `layer`: a node name (a torchvision module
/// path, e.g. "layer4.1.conv2") selects that node's output; a module prefix ("layer3",
/// "layer4.1", "features") selects the output of the module (its last node, unnamed
/// ReLUs and additions included); NULL selects the default, the last convolutional
/// stage: the input of the model's last adaptive average pool ("layer4" of a ResNet,
/// "features" of a VGG). The layer must be a spatial (N, C, H, W) value. The weights
/// are copied now and again whenever the model's change. The model must outlive it.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_NOT_FOUND (no such layer; the message lists
/// examples), NC_ERR_INVALID_ARGUMENT (a layer that is not spatial),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_saliency_create(nc_model *model, const char *layer, nc_saliency **out);
NC_API void nc_saliency_destroy(nc_saliency *s);  /* NULL-safe */
/// The name of the node whose output the maps use (borrowed; lives as long as s).
NC_API const char *nc_saliency_layer(const nc_saliency *s);

/// For images x (host NCHW float32, preprocessed as for nc_model_forward) and, per
/// image, the class classes[i] of head `head` (classes NULL = each image's top-1 class
/// of that head), the gradient of that class's logit (the model in eval mode):
///  - cam (may be NULL): n * h * w floats, Grad-CAM (Selvaraju et al.) at the layer:
///    ReLU(sum_k a_k A_k) with a_k the spatial mean of the gradient of channel k,
///    upsampled bilinearly to h x w (align_corners = false, as torch's
///    F.interpolate(..., mode='bilinear')); not normalised (divide by its maximum
///    to display);
///  - input_grad (may be NULL): n * c * h * w floats, the gradient with respect to
///    each input channel (plain input-gradient saliency; take |.| to display).
/// classes_used (may be NULL) receives the n classes explained. Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (head or a class out of range, n < 1),
/// NC_ERR_SHAPE, NC_ERR_OUT_OF_MEMORY, NC_ERR_BACKEND.
NC_API nc_status nc_saliency_compute(nc_saliency *s, const float *x, int n, int c, int h, int w, int head,
                                     const int32_t *classes, int32_t *classes_used, float *cam, float *input_grad);

/* ------------------------------------------------------------------ reports */

/** One epoch of a training run; NaN marks a value not measured (e.g. no validation). */
typedef struct nc_epoch_record {
    size_t struct_size;     /* sizeof(nc_epoch_record), set by _init */
    int64_t epoch;          /* 1-based */
    double train_loss, train_acc;  /* accuracy as a fraction in [0, 1] */
    double val_loss, val_acc;
    double lr;              /* learning rate of the default group at the epoch's end */
    double seconds;         /* wall time of the epoch */
    double images_per_sec;  /* training throughput */
} nc_epoch_record;

/** The per-epoch history of a run. */
typedef struct nc_history nc_history;

/// Fills `r` with epoch 0, NaN values and struct_size. NULL is ignored.
NC_API void nc_epoch_record_init(nc_epoch_record *r);
/// An empty history (records are kept in the order added). Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_history_create(nc_context *ctx, nc_history **out);
NC_API void nc_history_destroy(nc_history *h);  /* NULL-safe */
/// Appends a record (copied). Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad
/// struct_size), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_history_add(nc_history *h, const nc_epoch_record *r);
/// Drops every record with epoch > `epoch` (a resumed run continues from there).
/// Returns NC_OK, NC_ERR_NULL.
NC_API nc_status nc_history_truncate(nc_history *h, int64_t epoch);
NC_API int64_t nc_history_count(const nc_history *h);  /* 0 for NULL */
/// Copies record i (0-based, in the order added). Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (i out of range).
NC_API nc_status nc_history_get(const nc_history *h, int64_t i, nc_epoch_record *r);
/// Writes the history atomically as CSV (header epoch,train_loss,train_acc,val_loss,
/// val_acc,lr,seconds,images_per_sec; NaN as an empty field, infinities as inf/-inf,
/// the shortest of %.15g/%.17g that reads back exactly, '.' whatever the locale) or as
/// a JSON array of objects (NaN and infinities as null). Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_IO (message names the path), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_history_write_csv(const nc_history *h, const char *path);
NC_API nc_status nc_history_write_json(const nc_history *h, const char *path);
/// Reads a CSV written by nc_history_write_csv (to continue it on resume): the exact
/// header, 8 fields a line, integer epochs strictly increasing, LF or CRLF, trailing
/// empty lines allowed. Returns NC_OK, NC_ERR_NULL, NC_ERR_IO, NC_ERR_FORMAT
/// (file:line in the message), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_history_read_csv(nc_context *ctx, const char *path, nc_history **out);

/// SVG figures (self-contained, no scripts or external resources), written atomically:
/// training curves (loss and accuracy panels, train vs val), a confusion-matrix heat
/// map (normalize 1 = colour by row fraction, counts always printed) and per-class
/// accuracy (recall) bars. class_names may be NULL (class indices are used). See
/// docs/reports.md. Errors go to the history's context for the curves. Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (empty history, metrics that counted no
/// sample), NC_ERR_IO (message names the path), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_svg_training_curves(const nc_history *h, const char *path);
NC_API nc_status nc_svg_confusion_matrix(nc_context *ctx, const nc_metrics *m, const char *const *class_names,
                                         int normalize, const char *path);
NC_API nc_status nc_svg_per_class_accuracy(nc_context *ctx, const nc_metrics *m, const char *const *class_names,
                                           const char *path);

/** A run's report: run facts, history and the metrics of each evaluated split/head. */
typedef struct nc_report nc_report;

/// An empty report. Returns NC_OK, NC_ERR_NULL, NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_create(nc_context *ctx, nc_report **out);
NC_API void nc_report_destroy(nc_report *r);  /* NULL-safe */
/// Sets a run fact shown in the report ("model", "dataset", "epochs", ...); strings
/// and numbers are copied; setting a key again replaces it. Keys are kept in order
/// of first setting. Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (empty key),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_set_string(nc_report *r, const char *key, const char *value);
NC_API nc_status nc_report_set_number(nc_report *r, const char *key, double value);
/// Copies the history into the report (replacing an earlier one). Returns NC_OK,
/// NC_ERR_NULL, NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_set_history(nc_report *r, const nc_history *h);
/// Adds the metrics of head `head` on split `split` ("val", "test", ...): every
/// aggregate of the metrics API, the per-class table and the confusion matrix are
/// copied out of m. class_names may be NULL. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (head < 0, an empty split name, the same split/head
/// twice, or two splits whose file names would clash: bytes outside [A-Za-z0-9._-]
/// become '_'), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_add_metrics(nc_report *r, const char *split, int head, const nc_metrics *m,
                                       const char *const *class_names);
/// Writes into directory `dir` (created if missing): report.json, summary.txt (the
/// text of nc_report_summary), curves.svg (when a non-empty history is set), and per split and
/// head confusion_<split>.svg and per_class_<split>.svg (suffix _h<head> when the
/// head is not 0). Every file is written atomically. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT (empty dir), NC_ERR_IO (message names the path),
/// NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_write(nc_report *r, const char *dir);
/// The human-readable summary: run facts, the last epoch, then per split/head the
/// aggregate metrics, the per-class table (precision, recall = accuracy, F1, support)
/// and the confusion matrix. Copies at most size-1 bytes and a NUL into buf (buf may be
/// NULL when size is 0); *needed (may be NULL) gets the full length + 1. Returns
/// NC_OK, NC_ERR_NULL (r, or buf with size > 0), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_report_summary(const nc_report *r, char *buf, size_t size, size_t *needed);


/* ------------------------------------------------------------------- images */

/** An image: `channels` planes of `height` x `width` float32 values in [0, 1]
 *  (planar CHW), as decoded from a PNG (8- and 16-bit kept at full precision). */
typedef struct nc_image nc_image;

/// Creates a zero-filled image. Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT
/// (a size < 1), NC_ERR_LIMIT (over 2^31 values), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_image_create(nc_context *ctx, int channels, int height, int width, nc_image **out);
NC_API void nc_image_destroy(nc_image *img);
NC_API int nc_image_width(const nc_image *img);     /* 0 for NULL */
NC_API int nc_image_height(const nc_image *img);    /* 0 for NULL */
NC_API int nc_image_channels(const nc_image *img);  /* 0 for NULL */
/// Bit depth of the file the image came from (8 or 16; 1/2/4-bit files report 8);
/// 0 for images made in memory.
NC_API int nc_image_bit_depth(const nc_image *img);
/// The pixels, channels x height x width floats (borrowed: valid until destroy).
NC_API float *nc_image_data(nc_image *img);
NC_API const float *nc_image_const_data(const nc_image *img);

/** Limits checked against a PNG's header before anything is allocated. */
typedef struct nc_png_limits {
    size_t struct_size;
    int64_t max_width;   /* default 32768 */
    int64_t max_height;  /* default 32768 */
    int64_t max_pixels;  /* width * height; default 1 << 28 */
} nc_png_limits;

NC_API void nc_png_limits_init(nc_png_limits *lim);

/// Decodes a PNG file: gray -> 1 channel, gray+alpha -> 2, RGB -> 3, RGBA -> 4,
/// palette -> RGB (RGBA when it has transparency); gray or RGB with a tRNS colour key
/// gain an alpha channel (2 or 4 channels); 1/2/4/8/16-bit; interlaced too. Values are
/// scaled to [0, 1] by 255 or 65535 (16-bit keeps all 16 bits). lim NULL = defaults.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad limits struct_size or a
/// limit < 1), NC_ERR_IO (missing/unreadable: path and errno text), NC_ERR_FORMAT (not
/// a PNG, truncated, corrupt: libpng's message), NC_ERR_LIMIT (over a limit, checked
/// before allocating; also a file larger than 2*(max_pixels*8 + max_height) + 64 MiB),
/// NC_ERR_OUT_OF_MEMORY, NC_ERR_UNSUPPORTED (built without libpng).
NC_API nc_status nc_png_read(nc_context *ctx, const char *path, const nc_png_limits *lim, nc_image **out);
/// Same from `size` bytes in memory (not kept).
NC_API nc_status nc_png_read_memory(nc_context *ctx, const void *data, size_t size, const nc_png_limits *lim,
                                    nc_image **out);
/// Writes img as a PNG of bit_depth 8 or 16 (values clamped to [0, 1] and rounded,
/// NaN written as 0);
/// 1..4 channels become gray, gray+alpha, RGB, RGBA. Written atomically.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bit depth, channel count),
/// NC_ERR_IO, NC_ERR_OUT_OF_MEMORY, NC_ERR_UNSUPPORTED (no libpng).
NC_API nc_status nc_png_write(nc_context *ctx, const char *path, const nc_image *img, int bit_depth);

/* ----------------------------------------------------------------- datasets */

typedef struct nc_dataset nc_dataset;

typedef struct nc_dataset_options {
    size_t struct_size;
    nc_png_limits limits;          /* for every decoded file */
    const char *image_columns;     /* CSV: image columns stacked as channels, in order,
                                      comma-separated; NULL = "image" */
    const char *optional_column;   /* CSV: an image column that may be empty or name a
                                      missing file; its channels are zero then, and a
                                      0/1 "present" channel is appended; NULL = none */
    const char *label_columns;     /* CSV: one label column per head, comma-separated;
                                      NULL = "label" */
    const char *base_dir;          /* CSV: relative paths are relative to this;
                                      NULL = the manifest's directory */
} nc_dataset_options;

NC_API void nc_dataset_options_init(nc_dataset_options *opt);

/// A folder with one subfolder per class (names sorted like torchvision's
/// ImageFolder), PNG files inside (sorted by name; subfolders of a class folder are
/// not searched). The first image is decoded at open to learn the channel count.
/// opt may be NULL. Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (bad
/// struct_size), NC_ERR_IO (missing/unreadable folder), NC_ERR_NOT_FOUND (no class
/// folders or no images), NC_ERR_FORMAT, NC_ERR_LIMIT, NC_ERR_UNSUPPORTED (no libpng),
/// NC_ERR_OUT_OF_MEMORY, NC_ERR_CANCELLED (progress callback, NC_PHASE_SCAN over the
/// class folders; nothing is returned).
NC_API nc_status nc_dataset_open_folder(nc_context *ctx, const char *root, const nc_dataset_options *opt,
                                        nc_dataset **out);
/// A CSV manifest with a header row (RFC 4180 quoting); see docs/data.md. Labels of
/// a column that are all non-negative integers are class indices (classes 0..max);
/// otherwise the sorted distinct strings are the classes. Every required file must
/// exist at open. Errors name file and line: NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT
/// (unknown column), NC_ERR_IO, NC_ERR_FORMAT (syntax, field count, empty label),
/// NC_ERR_NOT_FOUND (missing file, no rows), NC_ERR_LIMIT, NC_ERR_UNSUPPORTED,
/// NC_ERR_OUT_OF_MEMORY, NC_ERR_CANCELLED (progress callback, NC_PHASE_SCAN every 64
/// rows, total -1; nothing is returned).
NC_API nc_status nc_dataset_open_csv(nc_context *ctx, const char *manifest, const nc_dataset_options *opt,
                                     nc_dataset **out);
/// MNIST-style IDX pair (images u8 N x H x W, labels u8 N), gzip-compressed or not.
/// Returns NC_OK, NC_ERR_NULL, NC_ERR_IO, NC_ERR_FORMAT (bad magic, dimensions,
/// sizes, truncated), NC_ERR_LIMIT, NC_ERR_OUT_OF_MEMORY, NC_ERR_UNSUPPORTED (no zlib).
NC_API nc_status nc_dataset_open_idx(nc_context *ctx, const char *images, const char *labels,
                                     nc_dataset **out);
NC_API void nc_dataset_destroy(nc_dataset *ds);

NC_API int64_t nc_dataset_size(const nc_dataset *ds);        /* samples; 0 for NULL */
NC_API int nc_dataset_num_heads(const nc_dataset *ds);       /* label columns; 0 for NULL */
NC_API int nc_dataset_num_classes(const nc_dataset *ds, int head);
/// Class name (borrowed, lives as long as the dataset); NULL when out of range.
NC_API const char *nc_dataset_class_name(const nc_dataset *ds, int head, int cls);
/// Channels of every sample (stacked files + indicator); 0 for NULL.
NC_API int nc_dataset_channels(const nc_dataset *ds);
/// The first file of sample i (borrowed), or "<idx>:i" style text for IDX; NULL out of range.
NC_API const char *nc_dataset_path(const nc_dataset *ds, int64_t i);
/// Labels of sample i, one per head.
NC_API nc_status nc_dataset_labels(const nc_dataset *ds, int64_t i, int32_t *labels);
/// Decodes sample i (files stacked as channels). Caller owns *out. Errors name the
/// file: NC_ERR_IO, NC_ERR_FORMAT, NC_ERR_LIMIT, NC_ERR_SHAPE (stacked files of
/// different sizes), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_dataset_get(nc_dataset *ds, int64_t i, nc_image **out);
/// counts[num_classes(head)] samples per class.
NC_API nc_status nc_dataset_class_counts(const nc_dataset *ds, int head, int64_t *counts);
/// weights[num_classes(head)] = n / (num_classes * count) ("balanced"; 0 for an
/// absent class).
NC_API nc_status nc_dataset_class_weights(const nc_dataset *ds, int head, float *weights);

/* --------------------------------------------------------------- transforms */

typedef struct nc_transform nc_transform;

/// An empty pipeline (identity). Steps run in the order they are added. Random steps
/// draw from (seed, epoch, sample index) only, so results never depend on threads.
NC_API nc_status nc_transform_create(nc_context *ctx, nc_transform **out);
NC_API void nc_transform_destroy(nc_transform *t);
/// Bilinear resize (torchvision antialias=False). width 0 = resize the shorter side to
/// `height` keeping the aspect ratio (torchvision Resize(int)).
NC_API nc_status nc_transform_add_resize(nc_transform *t, int height, int width);
NC_API nc_status nc_transform_add_center_crop(nc_transform *t, int height, int width);
/// torchvision RandomResizedCrop (10 tries, then a center crop fallback), bilinear.
NC_API nc_status nc_transform_add_random_resized_crop(nc_transform *t, int height, int width, float scale_min,
                                                      float scale_max, float ratio_min, float ratio_max);
NC_API nc_status nc_transform_add_hflip(nc_transform *t, float p);
NC_API nc_status nc_transform_add_vflip(nc_transform *t, float p);
/// Rotation by an angle uniform in [-degrees, degrees] (0..360) about the center,
/// bilinear, zero fill (torchvision's tensor semantics: border pixels fade to 0).
NC_API nc_status nc_transform_add_rotation(nc_transform *t, float degrees);
/// Random affine: translation up to (translate_x*W, translate_y*H) with translate in
/// [0, 1], scale uniform in [scale_min, scale_max] (scale_min > 0), bilinear, zero fill.
NC_API nc_status nc_transform_add_affine(nc_transform *t, float translate_x, float translate_y,
                                         float scale_min, float scale_max);
/// torchvision ColorJitter factors (0 = off; hue in [0, 0.5]), in a random order per
/// sample; saturation and hue apply to 3-channel images only, brightness and contrast
/// to any channel count (contrast blends with the mean of all values when not RGB).
NC_API nc_status nc_transform_add_color_jitter(nc_transform *t, float brightness, float contrast,
                                               float saturation, float hue);
/// torchvision RandomErasing (value filled into the erased box; scale_max <= 1).
NC_API nc_status nc_transform_add_random_erasing(nc_transform *t, float p, float scale_min, float scale_max,
                                                 float ratio_min, float ratio_max, float value);
/// (x - mean[c]) / std[c] for `channels` channels (copied; std finite and > 0).
NC_API nc_status nc_transform_add_normalize(nc_transform *t, const float *mean, const float *std, int channels);
/// Output size for an input of in_h x in_w.
NC_API nc_status nc_transform_output_size(const nc_transform *t, int in_h, int in_w, int *out_h, int *out_w);
/// Exact mode (exact != 0): every step on its own, as torchvision applies them one
/// after the other (several resamplings, colour jitter where it stands). The default
/// (0) is the fused mode: the geometric steps of a sample are composed into one map
/// and sampled once, colour jitter, normalize and erasing follow on the result (see
/// docs/data.md: the same draws, results differ within interpolation error).
/// Set it before the transform is in use (not while other threads apply it).
/// Returns NC_OK, NC_ERR_NULL.
NC_API nc_status nc_transform_set_exact(nc_transform *t, int exact);
/// Applies the pipeline; *out is new (the caller owns it; an empty pipeline copies),
/// with the input's bit depth. Thread-safe for one transform used from several
/// threads with different contexts (it is read-only once built).
NC_API nc_status nc_transform_apply(const nc_transform *t, nc_context *ctx, const nc_image *in, uint64_t seed,
                                    uint64_t epoch, uint64_t index, nc_image **out);
/// The seeds' training recipe at `size`: RandomResizedCrop(size, scale (0.7, 1)),
/// horizontal flip 0.5, rotation 20, color jitter (0.2, 0.2, 0.2, 0.05), affine
/// (translate 0.1, scale 0.9-1.1), normalize (mean/std of `channels` values; NULL =
/// ImageNet's for 3 channels, 0.5/0.5 otherwise), then random erasing p 0.2.
NC_API nc_status nc_transform_preset_train(nc_context *ctx, int size, int channels, const float *mean,
                                           const float *std, nc_transform **out);
/// Eval recipe: Resize(resize) (shorter side), CenterCrop(size), normalize as above.
NC_API nc_status nc_transform_preset_eval(nc_context *ctx, int resize, int size, int channels, const float *mean,
                                          const float *std, nc_transform **out);
/// Per-channel mean and std over samples indices[0..count) (all when indices is
/// NULL) of a dataset, optionally after a transform (NULL = raw); mean/std[channels].
/// Reports NC_PHASE_SCAN per sample; NC_ERR_CANCELLED leaves mean and std unwritten.
NC_API nc_status nc_dataset_channel_stats(nc_dataset *ds, const int64_t *indices, int64_t count,
                                          const nc_transform *t, float *mean, float *std);

/* ------------------------------------------------------------------- splits */

/// Stratified split by the fractions train/val/test (summing to 1; e.g. 0.7, 0.15,
/// 0.15) of labels[n]: assign[i] = 0 (train), 1 (val) or 2 (test). Each class is
/// shuffled with `seed` and cut by the fractions (largest remainders), so every
/// class's counts are within 1 of exact. Returns NC_OK, NC_ERR_NULL,
/// NC_ERR_INVALID_ARGUMENT.
NC_API nc_status nc_split_stratified(nc_context *ctx, const int32_t *labels, int64_t n, float train, float val,
                                     float test, uint64_t seed, int8_t *assign);
/// Stratified k-fold: fold[i] in [0, k); each class dealt round-robin over the folds
/// after a seeded shuffle, so fold sizes per class differ by at most 1.
NC_API nc_status nc_split_kfold(nc_context *ctx, const int32_t *labels, int64_t n, int k, uint64_t seed,
                                int32_t *fold);

/* ------------------------------------------------------------------- loader */

typedef struct nc_loader_options {
    size_t struct_size;
    int batch_size;          /* default 32 */
    int shuffle;             /* reshuffle every epoch from (seed, epoch); default 1 */
    int drop_last;           /* drop a final partial batch; default 0 */
    int workers;             /* decoding threads; 0 = decode in nc_loader_next; default 2 */
    int prefetch;            /* batches decoded ahead (bounds memory); default 2 */
    uint64_t seed;           /* shuffling and augmentation; default 0 */
    const int64_t *indices;  /* the samples to use (copied), NULL = all */
    int64_t num_indices;
    /* data parallel: this rank's part of every epoch, as torch's DistributedSampler:
       the epoch's order (the same on every rank: same seed) is padded by repeating its
       start to a multiple of shard_count, and rank r takes positions r, r + count, ...
       Default 0 of 1 (everything). */
    int shard_rank;
    int shard_count;
} nc_loader_options;

/** A batch: host NCHW float32 and int32 labels (n x heads); borrowed until the next
 *  nc_loader_next / nc_loader_start_epoch / destroy. */
typedef struct nc_batch {
    const float *x;
    const int32_t *labels;
    const int64_t *indices;  /* dataset index of each sample */
    int n, c, h, w, heads;
} nc_batch;

NC_API void nc_loader_options_init(nc_loader_options *opt);
/// Creates a loader over ds (and transform t, may be NULL: samples must then share one
/// size). ds and t must outlive the loader. workers 0..256, prefetch 0..1024 (>= 1
/// with workers). Returns NC_OK, NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT, NC_ERR_LIMIT
/// (absurd sizes), NC_ERR_OUT_OF_MEMORY.
NC_API nc_status nc_loader_create(nc_dataset *ds, const nc_transform *t, const nc_loader_options *opt,
                                  nc_loader **out);
/// Starts epoch `epoch` (shuffle order and augmentation draw from it); stops and
/// discards the work of a running epoch.
NC_API nc_status nc_loader_start_epoch(nc_loader *l, int64_t epoch);
/// Next batch of the epoch (starting epoch 0 if none was started); out->n == 0 at the
/// end of the epoch and after. A sample that fails to decode returns its status with
/// the file named in the message, and so does every later call until the next
/// nc_loader_start_epoch.
NC_API nc_status nc_loader_next(nc_loader *l, nc_batch *out);
NC_API int64_t nc_loader_num_batches(const nc_loader *l);
/// Stops the workers (also mid-epoch) and frees everything; NULL-safe.
NC_API void nc_loader_destroy(nc_loader *l);

#ifdef __cplusplus
}
#endif
#endif /* NEURC_H */
