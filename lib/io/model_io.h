/* model_io.h — private helpers shared by the two state_dict importers:
 * nc_model_load_weights (model_io.c) and nc_model_load_pretrained (pretrained.c).
 * They match a file tensor to a model tensor, describe differences in an
 * nc_load_report, and copy one matching tensor into the model. Also the pieces of
 * nc_model_save / nc_model_load that checkpoints (train/checkpoint.c) reuse. */
#ifndef NC_IO_MODEL_IO_H
#define NC_IO_MODEL_IO_H

#include "neurc.h"
#include "core/model.h"
#include "io/safetensors.h"

#include <stddef.h>

/* Appends "<what> <name><extra>" to r->text ("; "-separated; silently cut when the
 * text is full). NULL r is ignored; extra may be NULL. */
void nc__load_report_add(nc_load_report *r, const char *what, const char *name, const char *extra);

/* 1 when the file tensor has exactly the model tensor's shape (no broadcasting). */
int nc__load_shape_matches(const nc__st_tensor *ft, const nc__tensor_def *t);

/* 1 for the dtypes that load into a model: F32, F16, BF16, F64, I64, I32. */
int nc__load_dtype_ok(nc__st_dtype dt);

/* " F32 [64,3,7,7] in file vs [64,1,7,7] in model" into buf[size]. */
void nc__load_mismatch_text(const nc__st_tensor *ft, const nc__tensor_def *t, char *buf, size_t size);

/* Copies file tensor ft into model tensor i (shape and dtype already checked):
 * an I64 num_batches_tracked exactly, anything else through float32 via host,
 * scratch of at least m->slots[i].numel floats. */
nc_status nc__load_copy(nc_model *m, int i, const nc__st_tensor *ft, float *host);

/* A checkpoint (nc_trainer_save_checkpoint) is a model file plus this metadata key and
 * tensors named with this prefix, which nc_model_load skips in such a file. */
#define NC__CHECKPOINT_VERSION_KEY "neurc.checkpoint_version"
#define NC__CHECKPOINT_PREFIX "optimizer."

/* Receives one metadata entry (key, value text) of a model. */
typedef nc_status (*nc__meta_fn)(void *user, const char *key, const char *value);
/* The model's metadata, as nc_model_save stores it (docs/format.md) and the ONNX
 * export repeats it (io/onnx.c): neurc.version, neurc.arch, neurc.options or
 * neurc.graph, neurc.num_heads, neurc.num_classes, then when set neurc.class_names,
 * neurc.norm_mean, neurc.norm_std (JSON arrays) and user.<key> for each info key.
 * Stops at and returns fn's first failure. */
nc_status nc__model_io_meta(const nc_model *m, nc__meta_fn fn, void *user);

/* Adds every tensor of m under its name and the metadata nc_model_save writes
 * (architecture, heads, classes, class names, normalisation) to w. The tensor data
 * is downloaded into *scratch, allocated here with the context (set even on failure,
 * possibly NULL): nc__free it after nc__st_write / nc__st_serialize. */
nc_status nc__model_io_add(nc_model *m, nc__st_writer *w, float **scratch);

/* Loads m's tensors from f strictly: every model tensor present with its shape and a
 * loadable dtype, every file tensor a model tensor unless its name starts with
 * ignore_prefix (NULL = none). Checks everything before copying; check_only = 1 stops
 * there and changes nothing. Returns NC_OK, NC_ERR_NOT_FOUND (missing/unexpected),
 * NC_ERR_SHAPE (mismatched), NC_ERR_OUT_OF_MEMORY, a backend status; messages start
 * with path. */
nc_status nc__model_io_load_tensors(nc_model *m, const nc__st_file *f, const char *path, const char *ignore_prefix,
                                    int check_only);

/* The file-reading entries on an already parsed file f (from nc__st_read, or from
 * memory with nc__st_parse: the fuzz targets in tests/fuzz/ use these); `path` labels
 * the messages. Same statuses as nc_model_load, nc_model_load_weights and
 * nc_model_load_pretrained (whose report and options rules apply; opt is never NULL
 * here and already checked). f stays the caller's. */
nc_status nc__model_load_st(nc_context *ctx, const nc__st_file *f, const char *path, nc_model **out);
nc_status nc__model_load_weights_st(nc_model *m, const nc__st_file *f, const char *path, int strict,
                                    nc_load_report *report);
nc_status nc__model_load_pretrained_st(nc_model *m, const nc__st_file *f, const char *path,
                                       const nc_pretrained_options *opt, nc_load_report *report);

#endif
