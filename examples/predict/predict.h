/* predict.h — what nc-predict's two files share: the options, the list of inputs
 * (files to stack per image) that inputs.c builds from the command line's PATHs, and
 * the "nc-predict: PATH: reason" reports. */
#ifndef NC_PREDICT_H
#define NC_PREDICT_H

#include "neurc.h"

#include <stddef.h>

#define PROG "nc-predict"

typedef struct options {
    const char *checkpoint;
    const char *output;          /* NULL = stdout */
    const char *image_columns;   /* manifests: columns stacked as channels */
    const char *optional_column; /* manifests: an image column that may be empty */
    int top_k;                   /* 0 = min(5, classes) */
    int tta;                     /* 1 = average with the horizontal flip */
    int threshold;               /* 1 = add the calibrated-threshold column */
    int threshold_set;           /* 1 = threshold_value overrides the stored value */
    float threshold_value;
    int img_size, resize;        /* 0 = from the model's info */
    int batch_size;
    int threads;                 /* -1 = library default */
    nc_backend_kind backend;
    int no_temperature, recursive, convert;
    const char *cam_dir;         /* --cam DIR: Grad-CAM overlays; NULL = none */
} options;

/* One image to classify: files stacked as channels (one for a PNG argument). */
typedef struct input {
    char **files;
    int nfiles;
    int has_optional;  /* manifest with --optional-column */
    char *optional;    /* its file, NULL when the field is empty */
} input;

typedef struct input_list {
    input *v;
    size_t n, cap;
    int failures;  /* inputs (or whole arguments) that could not be read */
    int oom;
} input_list;

/* "nc-predict: PATH: reason" on stderr. */
void predict_report(const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The library's last message for a failed call about `path` (not repeating the path
 * when the message starts with it). */
void predict_report_lib(nc_context *ctx, const char *path, nc_status st);
char *predict_strdup(const char *s);
/* Adds the images of one command-line PATH: a PNG file, a folder of PNGs, or a CSV
 * manifest. Problems are reported and counted in l->failures; l->oom on OOM. */
void predict_add_path(input_list *l, const char *path, const options *o);
void predict_inputs_free(input_list *l);

/* --cam DIR (cam.c): Grad-CAM overlays of each classified image. cam_open creates DIR
 * and the saliency state (mean/std: the model's normalisation, NULL = none; borrowed);
 * cam_write_batch writes the overlays of a batch (x: (n, c, h, w) as classified; paths
 * and input indices name the files) and returns the number of failures. Messages are
 * printed. */
typedef struct cam_writer cam_writer;
int cam_open(cam_writer **out, nc_model *m, const char *dir, const float *mean, const float *std);
int cam_write_batch(cam_writer *cw, const float *x, int n, int c, int h, int w, const char *const *paths,
                    const size_t *index);
void cam_close(cam_writer *cw);

#endif
