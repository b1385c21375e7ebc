/* cam.c — nc-predict --cam DIR: a Grad-CAM overlay PNG per classified image and head
 * (nc_saliency at the model's last convolutional stage, for the predicted class): the
 * image as the model saw it (normalisation undone; RGB for 3 channels, channel 0 in
 * gray otherwise) blended half and half with a jet colouring of the map scaled to its
 * maximum, as pytorch-grad-cam's show_cam_on_image does. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "predict/predict.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct cam_writer {
    nc_context *ctx;
    nc_saliency *sal;
    const char *dir;
    const float *mean, *std;  /* NULL = none stored */
    int heads;
    float *cam;               /* (batch, h, w) */
    int32_t *classes;         /* (batch) */
    int cap;                  /* batch rows the buffers hold */
};

int cam_open(cam_writer **out, nc_model *m, const char *dir, const float *mean, const float *std) {
    *out = NULL;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        predict_report(dir, "cannot create the --cam folder: %s", strerror(errno));
        return 1;
    }
    cam_writer *cw = calloc(1, sizeof *cw);
    if (!cw) return 1;
    *cw = (cam_writer){.ctx = nc_model_context(m), .dir = dir, .mean = mean, .std = std,
                       .heads = nc_model_num_heads(m)};
    nc_status st = nc_saliency_create(m, NULL, &cw->sal);
    if (st != NC_OK) {
        predict_report_lib(cw->ctx, "--cam", st);
        free(cw);
        return 1;
    }
    *out = cw;
    return 0;
}

void cam_close(cam_writer *cw) {
    if (!cw) return;
    nc_saliency_destroy(cw->sal);
    free(cw->cam);
    free(cw->classes);
    free(cw);
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* The displayed value of channel k at pixel p of image x (c, h, w). */
static float shown(const cam_writer *cw, const float *x, int k, size_t plane, size_t p) {
    float v = x[(size_t)k * plane + p];
    return clamp01(cw->mean ? v * cw->std[k] + cw->mean[k] : v);
}

/* Writes DIR/<index>_<file stem>[_h<head>].png for one image. */
static int write_overlay(cam_writer *cw, const float *x, int c, int h, int w, const float *cam, const char *path,
                         size_t index, int head) {
    const size_t plane = (size_t)h * (size_t)w;
    float top = 0.0f;
    for (size_t p = 0; p < plane; p++) top = cam[p] > top ? cam[p] : top;
    nc_image *img = NULL;
    if (nc_image_create(cw->ctx, 3, h, w, &img) != NC_OK) return 1;
    float *o = nc_image_data(img);
    for (size_t p = 0; p < plane; p++) {
        float t = top > 0.0f ? cam[p] / top : 0.0f;
        float heat[3] = {clamp01(1.5f - fabsf(4.0f * t - 3.0f)), clamp01(1.5f - fabsf(4.0f * t - 2.0f)),
                         clamp01(1.5f - fabsf(4.0f * t - 1.0f))};
        for (int k = 0; k < 3; k++) o[(size_t)k * plane + p] = 0.5f * heat[k] + 0.5f * shown(cw, x, c == 3 ? k : 0, plane, p);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t stem = strlen(base);
    if (stem > 4 && strcmp(base + stem - 4, ".png") == 0) stem -= 4;
    char name[4096], suffix[16] = "";
    if (cw->heads > 1) snprintf(suffix, sizeof suffix, "_h%d", head);
    int len = snprintf(name, sizeof name, "%s/%05zu_%.*s%s.png", cw->dir, index, (int)stem, base, suffix);
    nc_status st = len > 0 && (size_t)len < sizeof name ? nc_png_write(cw->ctx, name, img, 8) : NC_ERR_LIMIT;
    nc_image_destroy(img);
    if (st != NC_OK) predict_report_lib(cw->ctx, name, st);
    return st != NC_OK;
}

int cam_write_batch(cam_writer *cw, const float *x, int n, int c, int h, int w, const char *const *paths,
                    const size_t *index) {
    const size_t plane = (size_t)h * (size_t)w;
    if (n > cw->cap) {
        free(cw->cam);
        free(cw->classes);
        cw->cam = malloc((size_t)n * plane * sizeof *cw->cam);
        cw->classes = malloc((size_t)n * sizeof *cw->classes);
        cw->cap = cw->cam && cw->classes ? n : 0;
        if (!cw->cap) return n;
    }
    int failed = 0;
    for (int head = 0; head < cw->heads; head++) {
        nc_status st = nc_saliency_compute(cw->sal, x, n, c, h, w, head, NULL, cw->classes, cw->cam, NULL);
        if (st != NC_OK) {
            predict_report_lib(cw->ctx, "--cam", st);
            return n;
        }
        for (int i = 0; i < n; i++)
            failed |= write_overlay(cw, x + (size_t)i * (size_t)c * plane, c, h, w, cw->cam + (size_t)i * plane,
                                    paths[i], index[i], head);
    }
    return failed;
}
