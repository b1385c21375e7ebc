/* test_onnx.c — nc_model_export_onnx's contract in C: option defaults and checks, each
 * error as a status + message that leaves an existing file as it was, the status of a
 * build without ONNX, and (with ONNX) the written message read back with protobuf-c:
 * IR and opset versions, the dynamic batch, initializer names, outputs per head and
 * metadata. The numbers themselves are checked by tests/python/test_onnx.py against an
 * independent evaluator and onnx.checker. */
#include "testutil.h"

#include "neurc.h"
#include "nc_config.h"
#if HAVE_ONNX
#include "io/onnx.pb-c.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OLD "old contents"

static nc_model *make_model(nc_context *ctx, int heads) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "simple_cnn";
    o.num_classes = 3;
    o.in_channels = 2;
    o.num_heads = heads;
    o.width = 4;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

static nc_onnx_options sized(int side) {
    nc_onnx_options o;
    nc_onnx_options_init(&o);
    o.height = o.width = side;
    return o;
}

static char *file_with_old_contents(const char *name) {
    char *path = tu_tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(OLD, f);
    fclose(f);
    return path;
}

static void assert_old_contents(const char *path) {
    size_t size = 0;
    char *data = tu_read_file(path, &size);
    assert_non_null(data);
    assert_string_equal(data, OLD);
    free(data);
}

static void test_onnx_options_defaults(void **state) {
    (void)state;
    nc_onnx_options o;
    memset(&o, 0x5a, sizeof o);
    nc_onnx_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.height, 0);
    assert_int_equal(o.width, 0);
    assert_int_equal(o.opset, 13);
    assert_int_equal(o.split_heads, 0);
    assert_int_equal(o.normalize, 0);
    assert_int_equal(o.fold_batchnorm, 0);
    nc_onnx_options_init(NULL); /* ignored */
}

/* Every refused argument: a status, a message, and the existing file untouched. */
static void test_onnx_errors_leave_file(void **state) {
    tu_fx *f = *state;
    nc_model *m = make_model(f->ctx, 1);
    char *path = file_with_old_contents("onnx_errors.onnx");
    nc_onnx_options o = sized(16);

    assert_int_equal(nc_model_export_onnx(NULL, path, &o), NC_ERR_NULL);
    assert_int_equal(nc_model_export_onnx(m, NULL, &o), NC_ERR_NULL);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "path is NULL"));
    assert_int_equal(nc_model_export_onnx(m, path, NULL), NC_ERR_INVALID_ARGUMENT); /* no size */
    assert_non_null(strstr(nc_context_last_error(f->ctx), "height and width"));
    o.struct_size = 3;
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "struct_size"));
    const int opsets[] = {12, 18, -1};
    for (int i = 0; i < 3; i++) {
        o = sized(16);
        o.opset = opsets[i];
        assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(nc_context_last_error(f->ctx), "opset"));
    }
    o = sized(16);
    o.split_heads = 2;
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "split_heads"));
    o = sized(16);
    o.normalize = 1; /* nothing stored */
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_STATE);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "normalization"));
#if HAVE_ONNX
    o = sized(1);    /* too small for the network */
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "1x1"));
    o = sized(16);   /* a folder that does not exist: the path in the message */
    char *bad = tu_tmp_path("no_such_dir/m.onnx");
    assert_int_equal(nc_model_export_onnx(m, bad, &o), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "no_such_dir"));
    free(bad);
#else
    o = sized(16);
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_ERR_UNSUPPORTED);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "without ONNX"));
#endif
    assert_old_contents(path);
    unlink(path);
    free(path);
    nc_model_destroy(m);
}

#if HAVE_ONNX
/* The message as written, read back with protobuf-c (the test's own allocations). */
static Onnx__ModelProto *read_back(const char *path) {
    size_t size = 0;
    char *data = tu_read_file(path, &size);
    assert_non_null(data);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, (const uint8_t *)data);
    free(data);
    assert_non_null(mp);
    return mp;
}

static const char *prop(const Onnx__ModelProto *mp, const char *key) {
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (strcmp(mp->metadata_props[i]->key, key) == 0) return mp->metadata_props[i]->value;
    return NULL;
}

static int has_initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return 1;
    return 0;
}

static int count_ops(const Onnx__GraphProto *g, const char *op) {
    int n = 0;
    for (size_t i = 0; i < g->n_node; i++) n += strcmp(g->node[i]->op_type, op) == 0;
    return n;
}

static void test_onnx_message_read_back(void **state) {
    tu_fx *f = *state;
    nc_model *m = make_model(f->ctx, 2);
    const char *names[] = {"alga", "debris", "bubble"};
    const float mean[2] = {0.5f, 0.25f}, std[2] = {0.2f, 0.1f};
    assert_int_equal(nc_model_set_class_names(m, names, 3), NC_OK);
    assert_int_equal(nc_model_set_normalization(m, mean, std), NC_OK);
    assert_int_equal(nc_model_set_info(m, "image_size", "16"), NC_OK);
    char *path = file_with_old_contents("onnx_read_back.onnx");
    nc_onnx_options o = sized(16);
    o.width = 20;
    o.opset = 17;
    o.split_heads = 1;
    o.normalize = 1;
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_OK);

    Onnx__ModelProto *mp = read_back(path);
    assert_int_equal(mp->ir_version, 8);
    assert_int_equal(mp->n_opset_import, 1);
    assert_int_equal(mp->opset_import[0]->version, 17);
    assert_string_equal(mp->producer_name, "neurc");
    const Onnx__GraphProto *g = mp->graph;
    assert_int_equal(g->n_input, 1);
    const Onnx__TensorShapeProto *in = g->input[0]->type->tensor_type->shape;
    assert_string_equal(g->input[0]->name, "input");
    assert_int_equal(in->n_dim, 4);
    assert_string_equal(in->dim[0]->dim_param, "batch");
    assert_int_equal(in->dim[1]->dim_value, 2);
    assert_int_equal(in->dim[2]->dim_value, 16);
    assert_int_equal(in->dim[3]->dim_value, 20);
    assert_int_equal(g->n_output, 2); /* split_heads */
    assert_string_equal(g->output[0]->name, "logits_0");
    assert_string_equal(g->output[1]->name, "logits_1");
    assert_int_equal(g->output[1]->type->tensor_type->shape->dim[1]->dim_value, 3);
    assert_true(has_initializer(g, "fc.0.weight"));
    assert_true(has_initializer(g, "input.mean"));
    assert_int_equal(count_ops(g, "Split"), 1);
    assert_int_equal(count_ops(g, "Sub"), 1);
    assert_int_equal(count_ops(g, "Dropout"), 0);
    assert_string_equal(prop(mp, "neurc.class_names"), "[\"alga\",\"debris\",\"bubble\"]");
    assert_string_equal(prop(mp, "neurc.norm_mean"), "[0.5,0.25]");
    assert_string_equal(prop(mp, "neurc.num_heads"), "2");
    assert_string_equal(prop(mp, "neurc.onnx.input_size"), "16x20");
    assert_string_equal(prop(mp, "neurc.onnx.normalized_in_graph"), "1");
    assert_string_equal(prop(mp, "user.image_size"), "16");
    onnx__model_proto__free_unpacked(mp, NULL);

    /* the defaults: opset 13 (IR 7), one output, no normalisation in the graph */
    o = sized(16);
    assert_int_equal(nc_model_export_onnx(m, path, &o), NC_OK);
    mp = read_back(path);
    assert_int_equal(mp->ir_version, 7);
    assert_int_equal(mp->opset_import[0]->version, 13);
    assert_int_equal(mp->graph->n_output, 1);
    assert_string_equal(mp->graph->output[0]->name, "logits");
    assert_int_equal(mp->graph->output[0]->type->tensor_type->shape->dim[1]->dim_value, 6);
    assert_int_equal(count_ops(mp->graph, "Sub"), 0);
    onnx__model_proto__free_unpacked(mp, NULL);
    unlink(path);
    free(path);
    nc_model_destroy(m);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onnx_options_defaults),
        cmocka_unit_test_setup_teardown(test_onnx_errors_leave_file, tu_fx_setup, tu_fx_teardown),
#if HAVE_ONNX
        cmocka_unit_test_setup_teardown(test_onnx_message_read_back, tu_fx_setup, tu_fx_teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
