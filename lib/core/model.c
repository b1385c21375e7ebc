/* model.c — the nc_model handle: one backend arena for all parameters and buffers
 * carved after a sizing pass, torchvision-keyed tensor access, initialisation with
 * torchvision's schemes from the counter-based RNG, and metadata. Execution lives in
 * graph/exec.c (nc_model_forward in eval/predict.c), files in io/model_io.c. */
#include "core/model.h"
#include "core/context.h"
#include "core/rng.h"
#include "graph/exec.h" /* nc__plan_destroy: the model owns its cached plans */

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NC__SLOT_ALIGN 64

static int is_host_counter(const nc__tensor_def *t) { return t->role == NC__ROLE_NUM_BATCHES; }
static nc_status set_class_names(nc_model *m, const char *const *names, int count);

nc_status nc__model_create_from_graph(nc_context *ctx, nc__graph *g, int num_heads, uint64_t seed,
                                      nc_model **out) {
    nc_status st = NC_OK;
    nc_model *m = nc__calloc(ctx, 1, sizeof *m);
    if (!m) {
        nc__graph_destroy(g);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "model: out of memory");
    }
    if (nc__gate_init(&m->gate) != 0 || nc__plan_pool_init(&m->eval_plans) != 0) {
        nc__free(ctx, m); /* (glibc's mutex and condition init do not fail) */
        nc__graph_destroy(g);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "model: cannot create its locks");
    }
    m->ctx = ctx;
    m->graph = g;
    g->num_heads = num_heads;
    nc_model_options_init(&m->opt);
    m->opt.arch = m->arch_name;
    m->opt.in_channels = g->in_channels;
    m->opt.num_heads = num_heads;
    m->slots = nc__calloc(ctx, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *m->slots);
    m->num_batches = nc__calloc(ctx, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *m->num_batches);
    NC_CHECK_ALLOC(ctx, m->slots);
    NC_CHECK_ALLOC(ctx, m->num_batches);

    /* sizing pass */
    size_t off = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        m->slots[i].numel = nc__shape_numel(&t->shape);
        if (t->trainable) m->num_params += m->slots[i].numel;
        if (is_host_counter(t)) continue;
        m->slots[i].offset = off;
        m->slots[i].bytes = (size_t)m->slots[i].numel * nc__dtype_size(NC__DTYPE_F32); /* f32 masters */
        off += (m->slots[i].bytes + NC__SLOT_ALIGN - 1) / NC__SLOT_ALIGN * NC__SLOT_ALIGN;
    }
    m->arena_bytes = off;
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, off ? off : NC__SLOT_ALIGN, &m->arena));

    m->num_classes = (int)(g->nodes[g->output].channels / num_heads);
    m->opt.num_classes = m->num_classes;
    NC_CHECK(nc__model_init_params(m, seed));
    *out = m;
    return NC_OK;
fail:
    nc_model_destroy(m);
    return st;
}

void nc_model_destroy(nc_model *m) {
    if (!m) return;
    nc_context *ctx = m->ctx;
    nc__plan_pool_destroy(ctx, &m->eval_plans);
    nc__plan_destroy(m->plan_train);
    if (m->arena) ctx->backend->free(ctx->backend_state, m->arena);
    if (m->grad_arena) ctx->backend->free(ctx->backend_state, m->grad_arena);
    set_class_names(m, NULL, 0);
    for (int i = 0; i < m->n_info; i++) {
        nc__free(ctx, m->info_keys[i]);
        nc__free(ctx, m->info_values[i]);
    }
    nc__free(ctx, m->info_keys);
    nc__free(ctx, m->info_values);
    nc__free(ctx, m->norm_mean);
    nc__free(ctx, m->norm_std);
    nc__free(ctx, m->slots);
    nc__free(ctx, m->num_batches);
    nc__graph_destroy(m->graph);
    nc__gate_destroy(&m->gate);
    nc__free(ctx, m);
}

void *nc__model_tensor_ptr(const nc_model *m, int i) {
    return (char *)m->arena + m->slots[i].offset;
}

void *nc__model_grad_ptr(const nc_model *m, int i) {
    return m->grad_arena ? (char *)m->grad_arena + m->slots[i].offset : NULL;
}

nc_status nc__model_ensure_grads(nc_model *m) {
    if (m->grad_arena) return NC_OK;
    nc_context *ctx = m->ctx;
    nc_status st = ctx->backend->alloc(ctx->backend_state, m->arena_bytes ? m->arena_bytes : 64,
                                       &m->grad_arena);
    if (st != NC_OK) return st;
    return ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, nc__model_param_floats(m));
}

static float init_value(const nc__tensor_def *t, uint64_t seed, uint64_t stream, uint64_t i) {
    switch (t->init) {
    case NC__INIT_ZERO: return 0.0f;
    case NC__INIT_ONE: return 1.0f;
    case NC__INIT_KAIMING_NORMAL_FAN_OUT:
        return nc__rng_normal(seed, stream, i) * (float)sqrt(2.0 / (double)(t->fan_out > 0 ? t->fan_out : 1));
    case NC__INIT_KAIMING_NORMAL_FAN_IN:
        return nc__rng_normal(seed, stream, i) * (float)sqrt(2.0 / (double)(t->fan_in > 0 ? t->fan_in : 1));
    case NC__INIT_LINEAR_UNIFORM: {
        float bound = (float)(1.0 / sqrt((double)(t->fan_in > 0 ? t->fan_in : 1)));
        return (2.0f * nc__rng_uniform(seed, stream, i) - 1.0f) * bound;
    }
    case NC__INIT_NORMAL_001: return 0.01f * nc__rng_normal(seed, stream, i);
    }
    return 0.0f;
}

nc_status nc__model_init_params(nc_model *m, uint64_t seed) {
    nc_context *ctx = m->ctx;
    nc__graph *g = m->graph;
    int64_t maxn = 1;
    for (int i = 0; i < g->n_tensors; i++)
        if (m->slots[i].numel > maxn) maxn = m->slots[i].numel;
    float *host = nc__alloc(ctx, (size_t)maxn * sizeof(float));
    if (!host) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "model init: out of memory");
    nc_status st = NC_OK;
    for (int i = 0; i < g->n_tensors && st == NC_OK; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        if (is_host_counter(t)) {
            m->num_batches[i] = 0;
            continue;
        }
        uint64_t stream = nc__hash_str(t->name);
        for (int64_t k = 0; k < m->slots[i].numel; k++) host[k] = init_value(t, seed, stream, (uint64_t)k);
        st = ctx->backend->upload(ctx->backend_state, nc__model_tensor_ptr(m, i), host, &t->shape);
    }
    nc__free(ctx, host);
    nc__model_params_changed(m);
    return st;
}

void nc__model_set_arch(nc_model *m, const nc_model_options *opt) {
    const char *arch = opt->arch ? opt->arch : "";
    m->opt = *opt;
    m->opt.struct_size = sizeof m->opt;
    snprintf(m->arch_name, sizeof m->arch_name, "%s", arch);
    m->opt.arch = m->arch_name;
    m->has_arch = 1;
    m->num_classes = opt->num_classes;
}

/* ------------------------------------------------------------ public queries */

int64_t nc_model_num_params(const nc_model *m) { return m ? m->num_params : 0; }

int nc_model_num_outputs(const nc_model *m) {
    return m ? m->num_classes * m->graph->num_heads : 0;
}

int nc_model_in_channels(const nc_model *m) { return m ? m->graph->in_channels : 0; }

int nc_model_num_heads(const nc_model *m) { return m ? m->graph->num_heads : 0; }

nc_context *nc_model_context(const nc_model *m) { return m ? m->ctx : NULL; }

int nc_model_num_tensors(const nc_model *m) { return m ? m->graph->n_tensors : 0; }

nc_status nc_model_tensor_info(const nc_model *m, int index, nc_tensor_info *info) {
    if (!m || !info) return m ? nc__error(m->ctx, NC_ERR_NULL, "nc_model_tensor_info: info is NULL") : NC_ERR_NULL;
    if (index < 0 || index >= m->graph->n_tensors)
        return nc__error(m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_model_tensor_info: index %d out of range [0, %d)",
                         index, m->graph->n_tensors);
    const nc__tensor_def *t = &m->graph->tensors[index];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->ndim = t->shape.ndim;
    for (int d = 0; d < t->shape.ndim; d++) info->shape[d] = t->shape.d[d];
    info->numel = m->slots[index].numel;
    info->trainable = t->trainable;
    return NC_OK;
}

static nc_status find_named(nc_model *m, const char *fn, const char *name, int64_t count, int *idx) {
    if (!name) return nc__error(m->ctx, NC_ERR_NULL, "%s: name is NULL", fn);
    int i = nc__graph_find_tensor(m->graph, name);
    if (i < 0) return nc__error(m->ctx, NC_ERR_NOT_FOUND, "%s: the model has no tensor '%s'", fn, name);
    if (count != m->slots[i].numel)
        return nc__error(m->ctx, NC_ERR_SHAPE, "%s: tensor '%s' has %lld elements, %lld given", fn, name,
                         (long long)m->slots[i].numel, (long long)count);
    *idx = i;
    return NC_OK;
}

static nc_status get_tensor(nc_model *m, const char *name, float *out, int64_t count) {
    if (!m) return NC_ERR_NULL;
    if (!out) return nc__error(m->ctx, NC_ERR_NULL, "nc_model_get_tensor: out is NULL");
    int i;
    nc_status st = find_named(m, "nc_model_get_tensor", name, count, &i);
    if (st != NC_OK) return st;
    const nc__tensor_def *t = &m->graph->tensors[i];
    if (is_host_counter(t)) {
        out[0] = (float)m->num_batches[i];
        return NC_OK;
    }
    return m->ctx->backend->download(m->ctx->backend_state, out, nc__model_tensor_ptr(m, i), &t->shape);
}

nc_status nc_model_get_tensor(nc_model *m, const char *name, float *out, int64_t count) {
    if (!m) return NC_ERR_NULL;
    nc__model_read_begin(m);
    nc_status st = get_tensor(m, name, out, count);
    nc__model_read_end(m);
    return st;
}

static nc_status set_tensor(nc_model *m, const char *name, const float *data, int64_t count) {
    if (!m) return NC_ERR_NULL;
    if (!data) return nc__error(m->ctx, NC_ERR_NULL, "nc_model_set_tensor: data is NULL");
    int i;
    nc_status st = find_named(m, "nc_model_set_tensor", name, count, &i);
    if (st != NC_OK) return st;
    const nc__tensor_def *t = &m->graph->tensors[i];
    if (is_host_counter(t)) {
        if (!(data[0] >= 0.0f && data[0] < 9.2e18f))
            return nc__error(m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_model_set_tensor: '%s' must be a non-negative count", name);
        m->num_batches[i] = (int64_t)data[0];
        nc__model_params_changed(m);
        return NC_OK;
    }
    nc__model_params_changed(m);
    return m->ctx->backend->upload(m->ctx->backend_state, nc__model_tensor_ptr(m, i), data, &t->shape);
}

/* Waits for inference calls on the model (core/gate.h), like every change below. */
nc_status nc_model_set_tensor(nc_model *m, const char *name, const float *data, int64_t count) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = set_tensor(m, name, data, count);
    nc__model_write_end(m);
    return st;
}

/* ------------------------------------------------------------------ metadata */

static nc_status set_class_names(nc_model *m, const char *const *names, int count) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (names && count != m->num_classes)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_model_set_class_names: %d names for %d classes", count,
                         m->num_classes);
    char **copy = NULL;
    if (names) {
        copy = nc__calloc(ctx, (size_t)count, sizeof *copy);
        if (!copy) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_set_class_names: out of memory");
        for (int i = 0; i < count; i++) {
            if (!names[i] || !(copy[i] = nc__strdup(ctx, names[i]))) {
                for (int k = 0; k < i; k++) nc__free(ctx, copy[k]);
                nc__free(ctx, copy);
                return names[i] ? nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_set_class_names: out of memory")
                                : nc__error(ctx, NC_ERR_NULL, "nc_model_set_class_names: name %d is NULL", i);
            }
        }
    }
    if (m->class_names) {
        for (int i = 0; i < m->num_classes; i++) nc__free(ctx, m->class_names[i]);
        nc__free(ctx, m->class_names);
    }
    m->class_names = copy;
    return NC_OK;
}

nc_status nc_model_set_class_names(nc_model *m, const char *const *names, int count) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = set_class_names(m, names, count);
    nc__model_write_end(m);
    return st;
}

const char *nc_model_class_name(const nc_model *m, int i) {
    if (!m || !m->class_names || i < 0 || i >= m->num_classes) return NULL;
    return m->class_names[i];
}

static nc_status set_normalization(nc_model *m, const float *mean, const float *std) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!mean || !std) return nc__error(ctx, NC_ERR_NULL, "nc_model_set_normalization: mean or std is NULL");
    int c = m->graph->in_channels;
    for (int i = 0; i < c; i++)
        if (!(std[i] > 0.0f) || !isfinite(mean[i]) || !isfinite(std[i]))
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "nc_model_set_normalization: channel %d: std must be positive and finite", i);
    if (!m->norm_mean) {
        m->norm_mean = nc__alloc(ctx, (size_t)c * sizeof(float));
        m->norm_std = nc__alloc(ctx, (size_t)c * sizeof(float));
        if (!m->norm_mean || !m->norm_std) {
            nc__free(ctx, m->norm_mean);
            nc__free(ctx, m->norm_std);
            m->norm_mean = m->norm_std = NULL;
            return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_set_normalization: out of memory");
        }
    }
    memcpy(m->norm_mean, mean, (size_t)c * sizeof(float));
    memcpy(m->norm_std, std, (size_t)c * sizeof(float));
    return NC_OK;
}

nc_status nc_model_set_normalization(nc_model *m, const float *mean, const float *std) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = set_normalization(m, mean, std);
    nc__model_write_end(m);
    return st;
}

nc_status nc_model_get_normalization(const nc_model *m, float *mean, float *std) {
    if (!m) return NC_ERR_NULL;
    if (!mean || !std) return nc__error(m->ctx, NC_ERR_NULL, "nc_model_get_normalization: mean or std is NULL");
    if (!m->norm_mean) return nc__error(m->ctx, NC_ERR_NOT_FOUND, "nc_model_get_normalization: no normalization stored");
    memcpy(mean, m->norm_mean, (size_t)m->graph->in_channels * sizeof(float));
    memcpy(std, m->norm_std, (size_t)m->graph->in_channels * sizeof(float));
    return NC_OK;
}

static int info_key_ok(const char *key) {
    size_t n = strlen(key);
    if (n < 1 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Index of key in the sorted list, or -(insertion point) - 1. */
static int info_find(const nc_model *m, const char *key) {
    int lo = 0, hi = m->n_info;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(m->info_keys[mid], key);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

static nc_status set_info(nc_model *m, const char *key, const char *value) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!key) return nc__error(ctx, NC_ERR_NULL, "nc_model_set_info: key is NULL");
    if (!info_key_ok(key))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_model_set_info: key '%.80s' must be 1..63 characters of [A-Za-z0-9_.-]", key);
    int i = info_find(m, key);
    if (!value) { /* remove */
        if (i < 0) return NC_OK;
        nc__free(ctx, m->info_keys[i]);
        nc__free(ctx, m->info_values[i]);
        memmove(m->info_keys + i, m->info_keys + i + 1, (size_t)(m->n_info - i - 1) * sizeof(char *));
        memmove(m->info_values + i, m->info_values + i + 1, (size_t)(m->n_info - i - 1) * sizeof(char *));
        m->n_info--;
        return NC_OK;
    }
    char *v = nc__strdup(ctx, value);
    if (!v) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_set_info: out of memory");
    if (i >= 0) {
        nc__free(ctx, m->info_values[i]);
        m->info_values[i] = v;
        return NC_OK;
    }
    i = -i - 1;
    char *k = nc__strdup(ctx, key);
    char **keys = nc__alloc(ctx, (size_t)(m->n_info + 1) * sizeof(char *));
    char **values = nc__alloc(ctx, (size_t)(m->n_info + 1) * sizeof(char *));
    if (!k || !keys || !values) {
        nc__free(ctx, k);
        nc__free(ctx, v);
        nc__free(ctx, keys);
        nc__free(ctx, values);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_set_info: out of memory");
    }
    for (int j = 0, o = 0; j <= m->n_info; j++) {
        if (j == i) {
            keys[j] = k;
            values[j] = v;
        } else {
            keys[j] = m->info_keys[o];
            values[j] = m->info_values[o++];
        }
    }
    nc__free(ctx, m->info_keys);
    nc__free(ctx, m->info_values);
    m->info_keys = keys;
    m->info_values = values;
    m->n_info++;
    return NC_OK;
}

nc_status nc_model_set_info(nc_model *m, const char *key, const char *value) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = set_info(m, key, value);
    nc__model_write_end(m);
    return st;
}

const char *nc_model_info(const nc_model *m, const char *key) {
    if (!m || !key) return NULL;
    int i = info_find(m, key);
    return i >= 0 ? m->info_values[i] : NULL;
}
