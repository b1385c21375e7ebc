/* model_io.c — models as safetensors files: parameters and buffers under their
 * torchvision state_dict keys, and in __metadata__ what is needed to rebuild the
 * model from the file alone (architecture options, or the graph of a builder-made
 * model), class names and input normalisation. See docs/format.md. */
#include "neurc.h"
#include "core/context.h"
#include "core/json.h"
#include "core/model.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "models/models.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION "1"
#define USER_PREFIX "user."  /* nc_model_set_info keys are saved as user.<key> */

/* ------------------------------------------------------------ metadata JSON */

static const char *head_name(nc_head_type h) { return h == NC_HEAD_MLP ? "mlp" : "linear"; }

static void options_json(nc__jw *j, const nc_model_options *o) {
    nc__jw_object(j, NULL);
    nc__jw_num(j, "num_classes", o->num_classes);
    nc__jw_num(j, "in_channels", o->in_channels);
    nc__jw_num(j, "num_heads", o->num_heads);
    nc__jw_num(j, "cardinality", o->cardinality);
    nc__jw_num(j, "base_width", o->base_width);
    nc__jw_array(j, "blocks");
    for (int i = 0; i < 4; i++) nc__jw_num(j, NULL, o->blocks[i]);
    nc__jw_end(j);
    nc__jw_num(j, "bottleneck", o->bottleneck);
    nc__jw_num(j, "block_dropout", o->block_dropout);
    nc__jw_num(j, "head_dropout", o->head_dropout);
    nc__jw_str(j, "head", head_name(o->head));
    nc__jw_num(j, "small_input", o->small_input);
    nc__jw_num(j, "width", o->width);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    nc__jw_str(j, "seed", seed);
    nc__jw_end(j);
}

static const char *op_key(nc__op op) {
    static const char *const names[NC__OP_COUNT] = {"input", "conv2d", "batchnorm", "relu", "max_pool2d",
                                                    "avg_pool2d", "adaptive_avg_pool2d", "add", "linear",
                                                    "dropout", "flatten", "concat"};
    return (unsigned)op < NC__OP_COUNT ? names[op] : "?";
}

static void node_attrs_json(nc__jw *j, const nc__node *nd) {
    switch (nd->op) {
    case NC__OP_CONV2D:
        nc__jw_num(j, "out_channels", (double)nd->attr.conv.out_channels);
        nc__jw_num(j, "kernel", (double)nd->attr.conv.kh);
        nc__jw_num(j, "stride", (double)nd->attr.conv.stride_h);
        nc__jw_num(j, "padding", (double)nd->attr.conv.pad_h);
        nc__jw_num(j, "dilation", (double)nd->attr.conv.dil_h);
        nc__jw_num(j, "groups", (double)nd->attr.conv.groups);
        nc__jw_num(j, "bias", nd->attr.conv.bias);
        break;
    case NC__OP_BATCHNORM:
        nc__jw_num(j, "eps", nd->attr.bn.eps);
        nc__jw_num(j, "momentum", nd->attr.bn.momentum);
        break;
    case NC__OP_MAXPOOL:
    case NC__OP_AVGPOOL:
        nc__jw_num(j, "kernel", (double)nd->attr.pool.kh);
        nc__jw_num(j, "stride", (double)nd->attr.pool.stride_h);
        nc__jw_num(j, "padding", (double)nd->attr.pool.pad_h);
        break;
    case NC__OP_ADAPTIVE_AVGPOOL:
        nc__jw_num(j, "out_h", (double)nd->attr.pool.out_h);
        nc__jw_num(j, "out_w", (double)nd->attr.pool.out_w);
        break;
    case NC__OP_LINEAR:
        nc__jw_num(j, "out_features", (double)nd->attr.linear.out_features);
        nc__jw_num(j, "bias", nd->attr.linear.bias);
        break;
    case NC__OP_DROPOUT: nc__jw_num(j, "p", nd->attr.dropout.p); break;
    default: break;
    }
}

static void graph_json(nc__jw *j, const nc__graph *g) {
    nc__jw_object(j, NULL);
    nc__jw_num(j, "in_channels", g->in_channels);
    nc__jw_num(j, "output", g->output);
    nc__jw_array(j, "nodes");
    for (int i = 1; i < g->n_nodes; i++) {
        const nc__node *nd = &g->nodes[i];
        nc__jw_object(j, NULL);
        nc__jw_str(j, "op", op_key(nd->op));
        nc__jw_str(j, "name", nd->name);
        nc__jw_array(j, "inputs");
        for (int k = 0; k < nd->n_inputs; k++) nc__jw_num(j, NULL, nd->inputs[k]);
        nc__jw_end(j);
        node_attrs_json(j, nd);
        nc__jw_end(j);
    }
    nc__jw_end(j);
    nc__jw_end(j);
}

static void float_array(nc__jw *j, const float *v, int n) {
    nc__jw_array(j, NULL);
    for (int i = 0; i < n; i++) nc__jw_num(j, NULL, (double)v[i]);
    nc__jw_end(j);
}

static void string_array(nc__jw *j, char *const *v, int n) {
    nc__jw_array(j, NULL);
    for (int i = 0; i < n; i++) nc__jw_str(j, NULL, v[i]);
    nc__jw_end(j);
}

/* ---------------------------------------------------------------------- save */

static nc_status st_meta(void *w, const char *key, const char *value) {
    return nc__st_writer_meta(w, key, value);
}

/* Passes the compact JSON text written into j to fn as metadata `key`; ends j. */
static nc_status emit_json(nc_context *ctx, nc__meta_fn fn, void *user, const char *key, nc__jw *j) {
    char *text = NULL;
    nc_status st = nc__jw_finish(j, "model metadata", &text, NULL);
    if (st == NC_OK) st = fn(user, key, text);
    nc__free(ctx, text);
    return st;
}

nc_status nc__model_io_meta(const nc_model *m, nc__meta_fn fn, void *user) {
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    nc_status st = NC_OK;
    NC_CHECK(fn(user, "neurc.version", nc_version_string()));
    NC_CHECK(fn(user, "neurc.arch", m->has_arch ? m->arch_name : "custom"));
    nc__jw j;
    nc__jw_init(&j, ctx, 0);
    if (m->has_arch) options_json(&j, &m->opt);
    else graph_json(&j, g);
    NC_CHECK(emit_json(ctx, fn, user, m->has_arch ? "neurc.options" : "neurc.graph", &j));
    {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", g->num_heads);
        NC_CHECK(fn(user, "neurc.num_heads", buf));
        snprintf(buf, sizeof buf, "%d", m->num_classes);
        NC_CHECK(fn(user, "neurc.num_classes", buf));
    }
    if (m->class_names) {
        nc__jw_init(&j, ctx, 0);
        string_array(&j, m->class_names, m->num_classes);
        NC_CHECK(emit_json(ctx, fn, user, "neurc.class_names", &j));
    }
    if (m->norm_mean) {
        nc__jw_init(&j, ctx, 0);
        float_array(&j, m->norm_mean, g->in_channels);
        NC_CHECK(emit_json(ctx, fn, user, "neurc.norm_mean", &j));
        nc__jw_init(&j, ctx, 0);
        float_array(&j, m->norm_std, g->in_channels);
        NC_CHECK(emit_json(ctx, fn, user, "neurc.norm_std", &j));
    }
    for (int i = 0; i < m->n_info; i++) {
        char key[80];
        snprintf(key, sizeof key, "%s%s", USER_PREFIX, m->info_keys[i]);
        NC_CHECK(fn(user, key, m->info_values[i]));
    }
fail:
    return st;
}

nc_status nc__model_io_add(nc_model *m, nc__st_writer *w, float **scratch) {
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    nc_status st = NC_OK;
    int64_t total = 0;
    for (int i = 0; i < g->n_tensors; i++) total += m->slots[i].numel;
    float *host = nc__alloc(ctx, (size_t)(total ? total : 1) * sizeof(float));
    *scratch = host;
    NC_CHECK_ALLOC(ctx, host);
    float *cur = host;
    for (int i = 0; i < g->n_tensors; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        if (t->role == NC__ROLE_NUM_BATCHES) {
            NC_CHECK(nc__st_writer_add(w, t->name, NC__DT_I64, 0, NULL, &m->num_batches[i]));
            continue;
        }
        NC_CHECK(ctx->backend->download(ctx->backend_state, cur, nc__model_tensor_ptr(m, i), &t->shape));
        NC_CHECK(nc__st_writer_add(w, t->name, NC__DT_F32, t->shape.ndim, t->shape.d, cur));
        cur += m->slots[i].numel;
    }
    NC_CHECK(nc__st_writer_meta(w, "format", "pt"));
    NC_CHECK(nc__st_writer_meta(w, "neurc.format_version", FORMAT_VERSION));
    NC_CHECK(nc__model_io_meta(m, st_meta, w));
fail:
    return st;
}

static nc_status model_save(nc_model *m, const char *path) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, "nc_model_save: path is NULL");
    nc_status st = NC_OK;
    nc__st_writer *w = NULL;
    float *host = NULL;
    NC_CHECK(nc__st_writer_create(ctx, &w));
    NC_CHECK(nc__model_io_add(m, w, &host));
    NC_CHECK(nc__st_write_reported(w, path, "nc_model_save"));
fail:
    nc__st_writer_destroy(w);
    nc__free(ctx, host);
    return st;
}

nc_status nc_model_save(nc_model *m, const char *path) {
    if (!m) return NC_ERR_NULL;
    nc__model_read_begin(m);
    nc_status st = model_save(m, path);
    nc__model_read_end(m);
    return st;
}

/* ---------------------------------------------------------------------- load */

/* The integer `key` of o; def when absent; INT_MIN (rejected by every validator)
 * when it is not an integer that fits an int. */
static int json_int(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN + 1.0 && v->valuedouble <= INT_MAX) ||
        v->valuedouble != floor(v->valuedouble))
        return INT_MIN;
    return (int)v->valuedouble;
}

/* A float-sized number (NaN, rejected by the validators, when it is not one). */
static double as_float_range(const cJSON *v) {
    return cJSON_IsNumber(v) && fabs(v->valuedouble) <= FLT_MAX ? v->valuedouble : NAN;
}

static double json_num(const cJSON *o, const char *key, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v ? as_float_range(v) : def;
}

/* Parses metadata `key`'s JSON text into *j: NC_ERR_OUT_OF_MEMORY, or NC_OK with *j
 * NULL when the text is not JSON (the caller says what it should have been). */
static nc_status parse_meta(nc_context *ctx, const char *path, const char *key, const char *text, cJSON **j) {
    nc_status st = nc__json_parse(ctx, text, strlen(text), NULL, j);
    if (st == NC_ERR_OUT_OF_MEMORY) return nc__error_prefix(ctx, st, "%s: metadata '%s'", path, key);
    return NC_OK;
}

static nc_status check_tensors(nc_context *ctx, const nc__graph *g, const nc__st_file *f, const char *path,
                               int strict, nc_load_report *r, const char *ignore_prefix);

/* Before a model is allocated and initialised: the graph its metadata describes needs
 * exactly the file's tensors (strict check, nc_model_load's messages). Without this a
 * file of a few hundred bytes whose metadata names a huge architecture had the whole
 * model allocated first (gigabytes, minutes of initialisation: found by fuzzing). */
static nc_status graph_fits_file(nc_context *ctx, const nc__graph *g, const nc__st_file *f, const char *path,
                                 const char *ignore_prefix) {
    nc_load_report r;
    return check_tensors(ctx, g, f, path, 1, &r, ignore_prefix);
}

/* The graph of architecture o checked against f; options the builder refuses are left
 * for nc_model_create to report. */
static nc_status arch_fits_file(nc_context *ctx, const nc_model_options *o, const nc__st_file *f, const char *path,
                                const char *ignore_prefix) {
    nc_builder *b = NULL;
    nc_value input, logits;
    nc_status st = nc_builder_create(ctx, o->in_channels, &b, &input);
    if (st == NC_OK && nc__arch_build(ctx, o, b, &logits) == NC_OK)
        st = graph_fits_file(ctx, nc__builder_graph(b), f, path, ignore_prefix);
    nc_builder_destroy(b);
    return st == NC_ERR_OUT_OF_MEMORY || st == NC_ERR_NOT_FOUND || st == NC_ERR_SHAPE ? st : NC_OK;
}

static nc_status create_from_options(nc_context *ctx, const nc__st_file *f, const char *path, const char *arch,
                                     const char *text, const char *ignore_prefix, nc_model **out) {
    cJSON *j = NULL;
    nc_status pst = parse_meta(ctx, path, "neurc.options", text, &j);
    if (pst != NC_OK) return pst;
    if (!cJSON_IsObject(j)) {
        nc__json_delete(ctx, j);
        return nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.options' is not a JSON object", path);
    }
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = arch;
    struct { const char *key; int *dst; } ints[] = {
        {"num_classes", &o.num_classes}, {"in_channels", &o.in_channels}, {"num_heads", &o.num_heads},
        {"cardinality", &o.cardinality}, {"base_width", &o.base_width},   {"bottleneck", &o.bottleneck},
        {"small_input", &o.small_input}, {"width", &o.width}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        *ints[i].dst = json_int(j, ints[i].key, *ints[i].dst);
        if (*ints[i].dst == INT_MIN) {
            nc__json_delete(ctx, j);
            return nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.options': '%s' is not an integer", path,
                             ints[i].key);
        }
    }
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(j, "blocks");
    for (int i = 0; i < 4 && cJSON_IsArray(blocks); i++) {
        const cJSON *b = cJSON_GetArrayItem(blocks, i);
        if (b) o.blocks[i] = cJSON_IsNumber(b) && b->valuedouble >= 0 && b->valuedouble <= 1e6 ? (int)b->valuedouble : -1;
    }
    o.block_dropout = (float)json_num(j, "block_dropout", o.block_dropout);
    o.head_dropout = (float)json_num(j, "head_dropout", o.head_dropout);
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(j, "head");
    if (cJSON_IsString(head)) o.head = strcmp(head->valuestring, "mlp") == 0 ? NC_HEAD_MLP : NC_HEAD_LINEAR;
    if (head && !(cJSON_IsString(head) && (strcmp(head->valuestring, "mlp") == 0 ||
                                           strcmp(head->valuestring, "linear") == 0))) {
        nc__json_delete(ctx, j);
        return nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.options': 'head' must be \"linear\" or \"mlp\"",
                         path);
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (cJSON_IsString(seed)) o.seed = strtoull(seed->valuestring, NULL, 10);
    nc__json_delete(ctx, j);
    nc_status st = arch_fits_file(ctx, &o, f, path, ignore_prefix);
    if (st != NC_OK) return st;
    st = nc_model_create(ctx, &o, out);
    if (st != NC_OK) nc__error_prefix(ctx, st, "%s: architecture from metadata", path);
    return st;
}

static nc__op op_from_key(const char *key) {
    for (int op = 0; op < NC__OP_COUNT; op++)
        if (strcmp(op_key((nc__op)op), key) == 0) return (nc__op)op;
    return NC__OP_COUNT;
}

static nc_status create_from_graph(nc_context *ctx, const nc__st_file *f, const char *path, const char *text,
                                   int num_heads, const char *ignore_prefix, nc_model **out) {
    nc_status st = NC_OK;
    nc_builder *b = NULL;
    nc_value *ids = NULL;
    cJSON *j = NULL;
    if ((st = parse_meta(ctx, path, "neurc.graph", text, &j)) != NC_OK) return st;
    const cJSON *nodes = j ? cJSON_GetObjectItemCaseSensitive(j, "nodes") : NULL;
    if (!cJSON_IsArray(nodes)) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.graph' has no node list", path);
        goto fail;
    }
    int count = cJSON_GetArraySize(nodes);
    ids = nc__calloc(ctx, (size_t)count + 1, sizeof *ids);
    NC_CHECK_ALLOC(ctx, ids);
    NC_CHECK(nc_builder_create(ctx, json_int(j, "in_channels", 0), &b, &ids[0]));
    int i = 1;
    for (const cJSON *o = nodes->child; o; o = o->next, i++) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op"), *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(o, "inputs");
        int n_in = cJSON_IsArray(inputs) ? cJSON_GetArraySize(inputs) : 0;
        nc_value in[NC__MAX_CONCAT];
        if (!cJSON_IsString(op) || !cJSON_IsString(nm) || n_in < 1 || n_in > NC__MAX_CONCAT) goto bad;
        for (int k = 0; k < n_in; k++) {
            const cJSON *v = cJSON_GetArrayItem(inputs, k);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < i)) goto bad;
            in[k] = ids[(int)v->valuedouble];
        }
        const char *name = nm->valuestring;
        nc_value *y = &ids[i];
        switch (op_from_key(op->valuestring)) {
        case NC__OP_CONV2D:
            st = nc_builder_conv2d(b, name, in[0], json_int(o, "out_channels", 0), json_int(o, "kernel", 0),
                                   json_int(o, "stride", 1), json_int(o, "padding", 0), json_int(o, "dilation", 1),
                                   json_int(o, "groups", 1), json_int(o, "bias", 0), y);
            break;
        case NC__OP_BATCHNORM:
            st = nc_builder_batchnorm(b, name, in[0], (float)json_num(o, "eps", 1e-5),
                                      (float)json_num(o, "momentum", 0.1), y);
            break;
        case NC__OP_RELU: st = nc_builder_relu(b, in[0], y); break;
        case NC__OP_MAXPOOL:
            st = nc_builder_max_pool2d(b, in[0], json_int(o, "kernel", 0), json_int(o, "stride", 0),
                                       json_int(o, "padding", 0), y);
            break;
        case NC__OP_AVGPOOL:
            st = nc_builder_avg_pool2d(b, in[0], json_int(o, "kernel", 0), json_int(o, "stride", 0),
                                       json_int(o, "padding", 0), y);
            break;
        case NC__OP_ADAPTIVE_AVGPOOL:
            st = nc_builder_adaptive_avg_pool2d(b, in[0], json_int(o, "out_h", 0), json_int(o, "out_w", 0), y);
            break;
        case NC__OP_ADD:
            if (n_in != 2) goto bad;
            st = nc_builder_add(b, in[0], in[1], y);
            break;
        case NC__OP_LINEAR:
            st = nc_builder_linear(b, name, in[0], json_int(o, "out_features", 0), json_int(o, "bias", 0), y);
            break;
        case NC__OP_DROPOUT: st = nc_builder_dropout(b, in[0], (float)json_num(o, "p", 0), y); break;
        case NC__OP_FLATTEN: st = nc_builder_flatten(b, in[0], y); break;
        case NC__OP_CONCAT: st = nc_builder_concat(b, in, n_in, y); break;
        default: goto bad;
        }
        if (st != NC_OK) goto fail;
    }
    int output = json_int(j, "output", -1);
    if (output < 1 || output > count) goto bad;
    if ((st = graph_fits_file(ctx, nc__builder_graph(b), f, path, ignore_prefix)) != NC_OK) {
        nc_builder_destroy(b);
        nc__free(ctx, ids);
        nc__json_delete(ctx, j);
        return st;
    }
    NC_CHECK(nc_builder_finish(b, ids[output], num_heads, 0, out));
    goto fail; /* cleanup */
bad:
    st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.graph': malformed node %d", path, i);
fail:
    if (st != NC_OK && st != NC_ERR_FORMAT) nc__error_prefix(ctx, st, "%s: graph from metadata", path);
    nc_builder_destroy(b);
    nc__free(ctx, ids);
    nc__json_delete(ctx, j);
    return st;
}

/* Helpers shared with pretrained.c: see io/model_io.h. */
void nc__load_report_add(nc_load_report *r, const char *what, const char *name, const char *extra) {
    if (!r) return;
    size_t len = strlen(r->text);
    if (len + 4 >= sizeof r->text) return;
    snprintf(r->text + len, sizeof r->text - len, "%s%s %s%s", len ? "; " : "", what, name, extra ? extra : "");
}

int nc__load_shape_matches(const nc__st_tensor *ft, const nc__tensor_def *t) {
    if (ft->ndim != t->shape.ndim) return 0;
    for (int d = 0; d < ft->ndim; d++)
        if (ft->shape[d] != t->shape.d[d]) return 0;
    return 1;
}

int nc__load_dtype_ok(nc__st_dtype dt) {
    return dt == NC__DT_F32 || dt == NC__DT_F16 || dt == NC__DT_BF16 || dt == NC__DT_F64 || dt == NC__DT_I64 ||
           dt == NC__DT_I32;
}

void nc__load_mismatch_text(const nc__st_tensor *ft, const nc__tensor_def *t, char *buf, size_t size) {
    char a[64], b[64];
    nc__shape fs = {ft->ndim > 4 ? 4 : ft->ndim, {0}};
    for (int d = 0; d < fs.ndim; d++) fs.d[d] = ft->shape[d];
    snprintf(buf, size, " %s %s in file vs %s in model", nc__st_dtype_name(ft->dtype), nc__shape_str(&fs, a, sizeof a),
             nc__shape_str(&t->shape, b, sizeof b));
}

nc_status nc__load_copy(nc_model *m, int i, const nc__st_tensor *ft, float *host) {
    const nc__tensor_def *t = &m->graph->tensors[i];
    if (t->role == NC__ROLE_NUM_BATCHES && ft->dtype == NC__DT_I64) {
        int64_t v;
        memcpy(&v, ft->data, sizeof v);
        m->num_batches[i] = v < 0 ? 0 : v;
        nc__model_params_changed(m);
        return NC_OK;
    }
    nc_status st = nc__st_to_f32(m->ctx, ft, host);
    if (st == NC_OK) st = nc_model_set_tensor(m, t->name, host, m->slots[i].numel);
    return st;
}

/* Matches file tensors to model tensors; strict: any difference fails before
 * anything is changed. */
/* Compares graph g's tensors with file f's (into *r); with strict, any missing,
 * unexpected (unless named with ignore_prefix) or mismatched tensor is an error. */
static nc_status check_tensors(nc_context *ctx, const nc__graph *g, const nc__st_file *f, const char *path,
                               int strict, nc_load_report *r, const char *ignore_prefix) {
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    for (int i = 0; i < g->n_tensors; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        const nc__st_tensor *ft = nc__st_find(f, t->name);
        if (!ft) {
            r->missing++;
            nc__load_report_add(r, "missing", t->name, NULL);
        } else if (!nc__load_shape_matches(ft, t) || !nc__load_dtype_ok(ft->dtype)) {
            char extra[160];
            nc__load_mismatch_text(ft, t, extra, sizeof extra);
            r->mismatched++;
            nc__load_report_add(r, "mismatched", t->name, extra);
        }
    }
    const size_t ignore_len = ignore_prefix ? strlen(ignore_prefix) : 0;
    for (int k = 0; k < f->n_tensors; k++)
        if (nc__graph_find_tensor(g, f->tensors[k].name) < 0 &&
            !(ignore_len && strncmp(f->tensors[k].name, ignore_prefix, ignore_len) == 0)) {
            r->unexpected++;
            nc__load_report_add(r, "unexpected", f->tensors[k].name, NULL);
        }
    if (strict && (r->missing || r->unexpected || r->mismatched))
        return nc__error(ctx, r->mismatched ? NC_ERR_SHAPE : NC_ERR_NOT_FOUND,
                         "%s: %d missing, %d unexpected, %d mismatched tensors (%s)", path, r->missing, r->unexpected,
                         r->mismatched, r->text);
    return NC_OK;
}

static nc_status load_tensors(nc_model *m, const nc__st_file *f, const char *path, int strict, nc_load_report *rep,
                              const char *ignore_prefix, int check_only) {
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    nc_load_report local;
    nc_load_report *r = rep ? rep : &local;
    nc_status st = check_tensors(ctx, g, f, path, strict, r, ignore_prefix);
    if (st != NC_OK || check_only) return st;
    int64_t maxn = 1;
    for (int i = 0; i < g->n_tensors; i++)
        if (m->slots[i].numel > maxn) maxn = m->slots[i].numel;
    float *host = nc__alloc(ctx, (size_t)maxn * sizeof(float));
    if (!host) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < g->n_tensors && st == NC_OK; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        const nc__st_tensor *ft = nc__st_find(f, t->name);
        if (!ft || !nc__load_shape_matches(ft, t) || !nc__load_dtype_ok(ft->dtype)) continue;
        st = nc__load_copy(m, i, ft, host);
        if (st == NC_OK) r->loaded++;
    }
    nc__free(ctx, host);
    return st;
}

nc_status nc__model_io_load_tensors(nc_model *m, const nc__st_file *f, const char *path, const char *ignore_prefix,
                                    int check_only) {
    return load_tensors(m, f, path, 1, NULL, ignore_prefix, check_only);
}

static nc_status json_floats(nc_context *ctx, const char *path, const char *key, const char *text, float *out,
                             int n) {
    cJSON *j = NULL;
    nc_status st = parse_meta(ctx, path, key, text, &j);
    if (st != NC_OK) return st;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != n)
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata '%s' must be an array of %d numbers", path, key, n);
    for (int i = 0; st == NC_OK && i < n; i++) {
        double v = as_float_range(cJSON_GetArrayItem(j, i));
        if (isnan(v))
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata '%s' must be an array of %d numbers", path, key, n);
        else
            out[i] = (float)v;
    }
    nc__json_delete(ctx, j);
    return st;
}

static nc_status load_metadata(nc_model *m, const nc__st_file *f, const char *path) {
    nc_context *ctx = m->ctx;
    nc_status st = NC_OK;
    const char *names = nc__st_meta(f, "neurc.class_names");
    if (names) {
        cJSON *j = NULL;
        st = parse_meta(ctx, path, "neurc.class_names", names, &j);
        int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
        if (st != NC_OK) {
        } else if (n != m->num_classes) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.class_names' must list %d names", path,
                           m->num_classes);
        } else {
            const char **list = nc__calloc(ctx, (size_t)n + 1, sizeof *list);
            if (!list) st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            for (int i = 0; st == NC_OK && i < n; i++) {
                const cJSON *v = cJSON_GetArrayItem(j, i);
                if (!cJSON_IsString(v))
                    st = nc__error(ctx, NC_ERR_FORMAT, "%s: class name %d is not a string", path, i);
                else
                    list[i] = v->valuestring;
            }
            if (st == NC_OK) st = nc_model_set_class_names(m, list, n);
            nc__free(ctx, (void *)list);
        }
        nc__json_delete(ctx, j);
    }
    const char *mean = nc__st_meta(f, "neurc.norm_mean"), *sd = nc__st_meta(f, "neurc.norm_std");
    if (st == NC_OK && (mean != NULL) != (sd != NULL))
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata has one of 'neurc.norm_mean' and 'neurc.norm_std' but not both",
                       path);
    if (st == NC_OK && mean && sd) {
        int c = m->graph->in_channels;
        float *buf = nc__alloc(ctx, 2 * (size_t)c * sizeof(float));
        if (!buf) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        st = json_floats(ctx, path, "neurc.norm_mean", mean, buf, c);
        if (st == NC_OK) st = json_floats(ctx, path, "neurc.norm_std", sd, buf + c, c);
        if (st == NC_OK) st = nc_model_set_normalization(m, buf, buf + c);
        nc__free(ctx, buf);
    }
    size_t plen = strlen(USER_PREFIX);
    for (int i = 0; st == NC_OK && i < f->n_meta; i++) {
        if (strncmp(f->meta_keys[i], USER_PREFIX, plen) != 0) continue;
        st = nc_model_set_info(m, f->meta_keys[i] + plen, f->meta_values[i]);
        if (st == NC_ERR_INVALID_ARGUMENT)
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata key '%.80s' is not a valid info key", path,
                           f->meta_keys[i]);
    }
    return st;
}

nc_status nc__model_load_st(nc_context *ctx, const nc__st_file *f, const char *path, nc_model **out) {
    nc_model *m = NULL;
    nc_status st;
    *out = NULL;
    /* a checkpoint is also a model file: its optimizer tensors are not the model's */
    const char *ignore = nc__st_meta(f, NC__CHECKPOINT_VERSION_KEY) ? NC__CHECKPOINT_PREFIX : NULL;
    const char *ver = nc__st_meta(f, "neurc.format_version");
    const char *arch = nc__st_meta(f, "neurc.arch");
    if (!ver || !arch) {
        st = nc__error(ctx, NC_ERR_FORMAT,
                       "%s: no neurc metadata (a plain state_dict? use nc_model_load_weights on a created model)",
                       path);
        goto fail;
    }
    if (strcmp(ver, FORMAT_VERSION) != 0) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: neurc format version %s is not supported (this library reads %s)",
                       path, ver, FORMAT_VERSION);
        goto fail;
    }
    if (strcmp(arch, "custom") == 0) {
        const char *graph = nc__st_meta(f, "neurc.graph"), *heads = nc__st_meta(f, "neurc.num_heads");
        if (!graph || !heads) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: custom model without 'neurc.graph' metadata", path);
            goto fail;
        }
        char *end;
        long nh = strtol(heads, &end, 10);
        if (*end || nh < 1 || nh > INT_MAX) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.num_heads' is not a positive integer", path);
            goto fail;
        }
        NC_CHECK(create_from_graph(ctx, f, path, graph, (int)nh, ignore, &m));
    } else {
        const char *opts = nc__st_meta(f, "neurc.options");
        if (!opts) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: metadata 'neurc.options' is missing", path);
            goto fail;
        }
        NC_CHECK(create_from_options(ctx, f, path, arch, opts, ignore, &m));
    }
    NC_CHECK(load_tensors(m, f, path, 1, NULL, ignore, 0));
    NC_CHECK(load_metadata(m, f, path));
    *out = m;
    return NC_OK;
fail:
    nc_model_destroy(m);
    return st;
}

nc_status nc_model_load(nc_context *ctx, const char *path, nc_model **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !out) return nc__error(ctx, NC_ERR_NULL, "nc_model_load: path or out is NULL");
    *out = NULL;
    nc__st_file *f = NULL;
    nc_status st = nc__st_read(ctx, path, &f);
    if (st != NC_OK) return st;
    st = nc__model_load_st(ctx, f, path, out);
    nc__st_close(f);
    return st;
}

static nc_status load_weights(nc_model *m, const char *path, int strict, nc_load_report *report) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, "nc_model_load_weights: path is NULL");
    if (report && report->struct_size != 0 && report->struct_size < sizeof *report)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_model_load_weights: bad report struct_size");
    nc__st_file *f = NULL;
    nc_status st = nc__st_read(ctx, path, &f);
    if (st != NC_OK) return st;
    st = nc__model_load_weights_st(m, f, path, strict, report);
    nc__st_close(f);
    return st;
}

nc_status nc__model_load_weights_st(nc_model *m, const nc__st_file *f, const char *path, int strict,
                                    nc_load_report *report) {
    return load_tensors(m, f, path, strict, report, NULL, 0);
}

nc_status nc_model_load_weights(nc_model *m, const char *path, int strict, nc_load_report *report) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = load_weights(m, path, strict, report);
    nc__model_write_end(m);
    return st;
}
