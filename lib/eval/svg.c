/* svg.c — self-contained SVG figures of a run (training curves, confusion heat map,
 * per-class accuracy bars): the renderers on plain arrays and the nc_svg_* functions
 * that feed them from a history or metrics and write the file atomically. */
#include "eval/svg.h"
#include "eval/history.h"
#include "core/context.h"
#include "io/file.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- SVG writer */

/* A tiny formatter for SVG markup that never touches the locale:
 *   %d int   %l long long   %s raw string   %x XML-escaped string
 *   %n double as a coordinate (2 decimals, trailing zeros dropped)   %% a '%'  */
static void svgf(nc__sbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *run = fmt;
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') continue;
        nc__sbuf_put(sb, run, (size_t)(p - run));
        char spec = *++p;
        char b[64];
        switch (spec) {
        case 'd': nc__sbuf_printf(sb, "%d", va_arg(ap, int)); break;
        case 'l': nc__sbuf_printf(sb, "%lld", va_arg(ap, long long)); break;
        case 's': nc__sbuf_puts(sb, va_arg(ap, const char *)); break;
        case 'x': {
            const char *s = va_arg(ap, const char *);
            nc__sbuf_xml(sb, s, strlen(s));
            break;
        }
        case 'n': {
            double v = va_arg(ap, double);
            if (!isfinite(v)) v = 0;
            nc__fmt_num(b, sizeof b, v, 2, 'f');
            char *dot = strchr(b, '.');
            if (dot) {
                char *end = b + strlen(b);
                while (end > dot + 1 && end[-1] == '0') *--end = 0;
                if (end == dot + 1) *dot = 0;
            }
            if (strcmp(b, "-0") == 0) strcpy(b, "0");
            nc__sbuf_puts(sb, b);
            break;
        }
        case '%': nc__sbuf_puts(sb, "%"); break;
        default: p--; break; /* a lone '%' at the end is kept below */
        }
        run = p + 1;
    }
    nc__sbuf_puts(sb, run);
    va_end(ap);
}

static const char font_family[] = "DejaVu Sans, Helvetica, Arial, sans-serif";
/* Average advance of a character as a fraction of the font size (for layout). */
#define CHAR_W 0.6

static void svg_open(nc__sbuf *sb, double w, double h, const char *title) {
    svgf(sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    svgf(sb,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%n\" height=\"%n\" viewBox=\"0 0 %n %n\" "
         "font-family=\"%s\" font-size=\"12\">\n",
         w, h, w, h, font_family);
    svgf(sb, "<title>%x</title>\n", title);
    svgf(sb, "<rect x=\"0\" y=\"0\" width=\"%n\" height=\"%n\" fill=\"#ffffff\"/>\n", w, h);
}

static void svg_close(nc__sbuf *sb) { svgf(sb, "</svg>\n"); }

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about `target` ticks. */
static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

/* Decimals needed to print multiples of `step`. */
static int step_decimals(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 10 ? 10 : d;
}

/* A class's label: its name (or index), cut to `max` code points with an ellipsis. */
static void put_name(nc__sbuf *sb, const char *const *names, int i, size_t max) {
    const char *s = names ? names[i] : NULL;
    char idx[24];
    if (!s) {
        snprintf(idx, sizeof idx, "%d", i);
        s = idx;
    }
    if (nc__utf8_len(s) <= max) {
        nc__sbuf_xml(sb, s, strlen(s));
    } else {
        nc__sbuf_xml(sb, s, nc__utf8_prefix(s, max - 1));
        nc__sbuf_puts(sb, "\xE2\x80\xA6"); /* … */
    }
}

static size_t name_len(const char *const *names, int i, size_t max) {
    size_t n;
    if (names && names[i]) {
        n = nc__utf8_len(names[i]);
    } else {
        char idx[24];
        n = (size_t)snprintf(idx, sizeof idx, "%d", i);
    }
    return n < max ? n : max;
}

/* -------------------------------------------------------- training curves */

typedef struct series {
    const char *cls, *label, *colour;
    size_t off; /* offset of the double in nc_epoch_record */
} series;

static double rec_val(const nc_epoch_record *r, size_t off) {
    double v;
    memcpy(&v, (const char *)r + off, sizeof v);
    return v;
}

static void curve_panel(nc__sbuf *sb, const nc_epoch_record *rec, int64_t n, const series *sr, const char *title,
                        const char *ylabel, double px, double py, double pw, double ph, double xlo, double xhi) {
    /* y range over both series */
    double lo = INFINITY, hi = -INFINITY;
    int has[2] = {0, 0};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < n; i++) {
            double v = rec_val(&rec[i], sr[s].off);
            if (!isfinite(v)) continue;
            has[s] = 1;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    svgf(sb, "<g class=\"panel\" data-panel=\"%x\">\n", title);
    svgf(sb, "<text x=\"%n\" y=\"%n\" font-size=\"14\" font-weight=\"bold\">%x</text>\n", px, py - 14, title);
    /* legend, right-aligned on the title line */
    double lx = px + pw;
    for (int s = 1; s >= 0; s--) {
        if (!has[s]) continue;
        double tw = strlen(sr[s].label) * 12 * CHAR_W;
        lx -= tw;
        svgf(sb, "<text x=\"%n\" y=\"%n\">%x</text>\n", lx, py - 14, sr[s].label);
        lx -= 26;
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"%s\" stroke-width=\"2\"/>\n", lx,
             py - 18, lx + 20, py - 18, sr[s].colour);
        lx -= 14;
    }
    svgf(sb, "<rect x=\"%n\" y=\"%n\" width=\"%n\" height=\"%n\" fill=\"none\" stroke=\"#444444\"/>\n", px, py, pw,
         ph);
    /* x ticks: integer epochs */
    double xstep = nice_step(xhi - xlo, 8);
    if (xstep < 1) xstep = 1;
    for (double t = ceil(xlo / xstep) * xstep; t <= xhi + 1e-9; t += xstep) {
        double x = px + (t - xlo) / (xhi - xlo) * pw;
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#e5e5e5\"/>\n", x, py + 1, x, py + ph - 1);
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#444444\"/>\n", x, py + ph, x, py + ph + 5);
        svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\">%l</text>\n", x, py + ph + 18, (long long)llround(t));
    }
    svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\">epoch</text>\n", px + pw / 2, py + ph + 38);
    svgf(sb, "<text transform=\"translate(%n %n) rotate(-90)\" text-anchor=\"middle\">%x</text>\n", px - 52,
         py + ph / 2, ylabel);
    if (!has[0] && !has[1]) {
        svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\" fill=\"#888888\">not measured</text>\n</g>\n",
             px + pw / 2, py + ph / 2);
        return;
    }
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) {
        double d = hi != 0 ? fabs(hi) * 0.1 : 0.5;
        lo -= d;
        hi += d;
    }
    double ystep = nice_step(hi - lo, 6);
    double ylo = floor(lo / ystep) * ystep, yhi = ceil(hi / ystep) * ystep;
    int dec = step_decimals(ystep);
    for (int k = 0;; k++) {
        double t = ylo + k * ystep;
        if (t > yhi + ystep * 1e-6) break;
        double y = py + ph - (t - ylo) / (yhi - ylo) * ph;
        char b[64];
        if (k > 0 && t < yhi - ystep * 1e-6)
            svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#e5e5e5\"/>\n", px + 1, y, px + pw - 1, y);
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#444444\"/>\n", px - 5, y, px, y);
        svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"end\">%s</text>\n", px - 8, y + 4,
             nc__fmt_num(b, sizeof b, fabs(t) < ystep * 1e-6 ? 0.0 : t, dec, 'f'));
    }
    /* the lines: a NaN breaks a line; a point with no neighbour gets a marker only */
    int markers = n <= 60;
    for (int s = 0; s < 2; s++) {
        if (!has[s]) continue;
        svgf(sb, "<g class=\"%s\" stroke=\"%s\" fill=\"%s\">\n", sr[s].cls, sr[s].colour, sr[s].colour);
        for (int64_t i = 0; i < n;) {
            while (i < n && !isfinite(rec_val(&rec[i], sr[s].off))) i++;
            int64_t j = i;
            while (j < n && isfinite(rec_val(&rec[j], sr[s].off))) j++;
            if (j - i >= 2) {
                svgf(sb, "<polyline class=\"%s\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"",
                     sr[s].cls);
                for (int64_t k = i; k < j; k++) {
                    double x = px + ((double)rec[k].epoch - xlo) / (xhi - xlo) * pw;
                    double y = py + ph - (rec_val(&rec[k], sr[s].off) - ylo) / (yhi - ylo) * ph;
                    svgf(sb, k > i ? " %n,%n" : "%n,%n", x, y);
                }
                svgf(sb, "\"/>\n");
            }
            for (int64_t k = i; k < j; k++) {
                if (!markers && j - i >= 2) break;
                double v = rec_val(&rec[k], sr[s].off);
                double x = px + ((double)rec[k].epoch - xlo) / (xhi - xlo) * pw;
                double y = py + ph - (v - ylo) / (yhi - ylo) * ph;
                char b[64];
                svgf(sb, "<circle cx=\"%n\" cy=\"%n\" r=\"%s\" stroke=\"none\"><title>%s, epoch %l: %s</title></circle>\n",
                     x, y, j - i >= 2 ? "2.5" : "3.5", sr[s].label, (long long)rec[k].epoch,
                     nc__fmt_num(b, sizeof b, v, 4, 'g'));
            }
            i = j;
        }
        svgf(sb, "</g>\n");
    }
    svgf(sb, "</g>\n");
}

void nc__svg_curves(nc__sbuf *sb, const nc_epoch_record *rec, int64_t n) {
    const double pw = 380, ph = 280, py = 70, left = 78, gap = 110;
    const double W = left + 2 * pw + gap + 24, H = py + ph + 56;
    double xlo = INFINITY, xhi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        xlo = fmin(xlo, (double)rec[i].epoch);
        xhi = fmax(xhi, (double)rec[i].epoch);
    }
    if (!(xhi > xlo)) {
        xlo -= 1;
        xhi += 1;
    }
    char title[96];
    snprintf(title, sizeof title, "Training curves (%lld epoch%s)", (long long)n, n == 1 ? "" : "s");
    svg_open(sb, W, H, title);
    svgf(sb, "<text x=\"%n\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">%x</text>\n", W / 2,
         title);
    const series loss[2] = {{"train", "train", "#1f77b4", offsetof(nc_epoch_record, train_loss)},
                            {"val", "val", "#ff7f0e", offsetof(nc_epoch_record, val_loss)}};
    const series acc[2] = {{"train", "train", "#1f77b4", offsetof(nc_epoch_record, train_acc)},
                           {"val", "val", "#ff7f0e", offsetof(nc_epoch_record, val_acc)}};
    curve_panel(sb, rec, n, loss, "Loss", "loss", left, py, pw, ph, xlo, xhi);
    curve_panel(sb, rec, n, acc, "Accuracy", "accuracy", left + pw + gap, py, pw, ph, xlo, xhi);
    svg_close(sb);
}

/* ---------------------------------------------------------- colour scale */

/* matplotlib's "Blues": white to dark blue, linear between nine stops. */
static const unsigned char blues[9][3] = {{0xf7, 0xfb, 0xff}, {0xde, 0xeb, 0xf7}, {0xc6, 0xdb, 0xef},
                                          {0x9e, 0xca, 0xe1}, {0x6b, 0xae, 0xd6}, {0x42, 0x92, 0xc6},
                                          {0x21, 0x71, 0xb5}, {0x08, 0x51, 0x9c}, {0x08, 0x30, 0x6b}};

static void colour_of(double v, int rgb[3]) {
    if (!(v > 0)) v = 0;
    if (v > 1) v = 1;
    double t = v * 8;
    int i = (int)t;
    if (i >= 8) i = 7;
    double f = t - i;
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(blues[i][c] + f * (blues[i + 1][c] - blues[i][c]));
}

static void put_colour(nc__sbuf *sb, const int rgb[3]) { nc__sbuf_printf(sb, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]); }

/* ------------------------------------------------------ confusion heat map */

#define NAME_MAX_CP 24

void nc__svg_confusion(nc__sbuf *sb, int K, const int64_t *cm, const char *const *names, int normalize) {
    double cs = 480.0 / K;
    cs = cs < 12 ? 12 : cs > 80 ? 80 : cs;
    double lf = fmin(13, fmax(7, cs * 0.7)); /* label font */
    size_t maxn = 1;
    int64_t maxc = 0, total = 0;
    for (int i = 0; i < K; i++) {
        size_t l = name_len(names, i, NAME_MAX_CP);
        if (l > maxn) maxn = l;
    }
    for (size_t i = 0; i < (size_t)K * (size_t)K; i++) {
        if (cm[i] > maxc) maxc = cm[i];
        total += cm[i];
    }
    double namew = (double)maxn * lf * CHAR_W;
    int rot = namew > cs - 4 ? (cs < 18 ? 90 : 45) : 0;
    double below = rot == 0 ? lf + 6 : rot == 45 ? namew * 0.71 + lf : namew + 6;
    double ml = 40 + namew + 10;
    if (rot == 45 && namew * 0.71 + 10 > ml) ml = namew * 0.71 + 10;
    double mt = 56, side = K * cs;
    double cbx = ml + side + 24, cbw = 16;
    double W = cbx + cbw + 90, H = mt + side + 10 + below + 36;
    if (W < 360) W = 360;

    char title[128];
    snprintf(title, sizeof title, "Confusion matrix (%s, %lld samples)", normalize ? "row-normalised" : "counts",
             (long long)total);
    svg_open(sb, W, H, title);
    svgf(sb, "<text x=\"%n\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">%x</text>\n",
         W / 2, title);
    svgf(sb,
         "<defs><linearGradient id=\"nc-blues\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int s = 0; s < 9; s++) {
        int rgb[3] = {blues[s][0], blues[s][1], blues[s][2]};
        svgf(sb, "<stop offset=\"%n\" stop-color=\"", s / 8.0);
        put_colour(sb, rgb);
        svgf(sb, "\"/>");
    }
    svgf(sb, "</linearGradient></defs>\n");

    /* cells */
    double cf = fmin(15, cs * 0.42); /* count font */
    svgf(sb, "<g class=\"cells\" font-size=\"%n\" text-anchor=\"middle\">\n", cf);
    for (int t = 0; t < K; t++) {
        int64_t row = 0;
        for (int p = 0; p < K; p++) row += cm[(size_t)t * K + p];
        for (int p = 0; p < K; p++) {
            int64_t c = cm[(size_t)t * K + p];
            double frac = row > 0 ? (double)c / (double)row : 0.0;
            double v = normalize ? frac : (maxc > 0 ? (double)c / (double)maxc : 0.0);
            int rgb[3];
            colour_of(v, rgb);
            double x = ml + p * cs, y = mt + t * cs;
            char b[64];
            svgf(sb, "<rect class=\"cell\" data-true=\"%d\" data-pred=\"%d\" data-count=\"%l\" x=\"%n\" y=\"%n\" "
                     "width=\"%n\" height=\"%n\" fill=\"",
                 t, p, (long long)c, x, y, cs, cs);
            put_colour(sb, rgb);
            if (K <= 50) { /* hover text; too bulky for K^2 cells beyond that */
                svgf(sb, "\"><title>true ");
                put_name(sb, names, t, 200);
                svgf(sb, ", predicted ");
                put_name(sb, names, p, 200);
                svgf(sb, ": %l (%s%% of the true class)</title></rect>\n", (long long)c,
                     nc__fmt_num(b, sizeof b, 100 * frac, 1, 'f'));
            } else {
                svgf(sb, "\"/>\n");
            }
            /* the count, when it fits; white on dark cells */
            char num[32];
            int nd = snprintf(num, sizeof num, "%lld", (long long)c);
            double fs = cf;
            if (nd * fs * CHAR_W > cs * 0.9) fs = cs * 0.9 / (nd * CHAR_W);
            if (fs < 5.5) continue;
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            const char *tc = lum < 150 ? "#ffffff" : "#1a1a1a";
            int two = normalize && cs >= 44;
            svgf(sb, "<text class=\"count\" x=\"%n\" y=\"%n\" fill=\"%s\"", x + cs / 2,
                 y + cs / 2 + fs * 0.35 - (two ? fs * 0.45 : 0), tc);
            if (fs != cf) svgf(sb, " font-size=\"%n\"", fs);
            svgf(sb, ">%s</text>\n", num);
            if (two)
                svgf(sb, "<text class=\"fraction\" x=\"%n\" y=\"%n\" fill=\"%s\" font-size=\"%n\">%s%%</text>\n",
                     x + cs / 2, y + cs / 2 + fs * 0.9, tc, fs * 0.75, nc__fmt_num(b, sizeof b, 100 * frac, 0, 'f'));
        }
    }
    svgf(sb, "</g>\n");
    svgf(sb, "<rect x=\"%n\" y=\"%n\" width=\"%n\" height=\"%n\" fill=\"none\" stroke=\"#444444\"/>\n", ml, mt, side,
         side);

    /* class names: rows (true) on the left, columns (predicted) below */
    svgf(sb, "<g class=\"ylabels\" font-size=\"%n\" text-anchor=\"end\">\n", lf);
    for (int t = 0; t < K; t++) {
        svgf(sb, "<text x=\"%n\" y=\"%n\">", ml - 6, mt + t * cs + cs / 2 + lf * 0.35);
        put_name(sb, names, t, NAME_MAX_CP);
        svgf(sb, "</text>\n");
    }
    svgf(sb, "</g>\n<g class=\"xlabels\" font-size=\"%n\" text-anchor=\"%s\">\n", lf, rot ? "end" : "middle");
    for (int p = 0; p < K; p++) {
        double x = ml + p * cs + cs / 2, y = mt + side + 6;
        if (rot == 0)
            svgf(sb, "<text x=\"%n\" y=\"%n\">", x, y + lf);
        else if (rot == 45)
            svgf(sb, "<text transform=\"translate(%n %n) rotate(-45)\">", x + lf * 0.3, y + lf * 0.3);
        else
            svgf(sb, "<text transform=\"translate(%n %n) rotate(-90)\">", x + lf * 0.35, y);
        put_name(sb, names, p, NAME_MAX_CP);
        svgf(sb, "</text>\n");
    }
    svgf(sb, "</g>\n");
    svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\" font-size=\"13\">predicted class</text>\n",
         ml + side / 2, mt + side + 10 + below + 20);
    svgf(sb, "<text transform=\"translate(%n %n) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">true class</text>\n",
         22.0, mt + side / 2);

    /* colour bar */
    svgf(sb, "<g class=\"colorbar\">\n<rect x=\"%n\" y=\"%n\" width=\"%n\" height=\"%n\" fill=\"url(#nc-blues)\" "
             "stroke=\"#444444\"/>\n",
         cbx, mt, cbw, side);
    double top = normalize ? 1.0 : (double)(maxc > 0 ? maxc : 1);
    double step = nice_step(top, side >= 200 ? 5 : 3);
    if (!normalize && step < 1) step = 1;
    int dec = step_decimals(step);
    for (int k = 0;; k++) {
        double t = k * step;
        if (t > top * (1 + 1e-9)) break;
        double y = mt + side - t / top * side;
        char b[64];
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#444444\"/>\n", cbx + cbw, y, cbx + cbw + 4, y);
        svgf(sb, "<text x=\"%n\" y=\"%n\" font-size=\"11\">%s</text>\n", cbx + cbw + 7, y + 4,
             nc__fmt_num(b, sizeof b, t, dec, 'f'));
    }
    svgf(sb, "<text transform=\"translate(%n %n) rotate(90)\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
         cbx + cbw + 60, mt + side / 2, normalize ? "fraction of the true class" : "samples");
    svgf(sb, "</g>\n");
    svg_close(sb);
}

/* ------------------------------------------------------- per-class bars */

void nc__svg_per_class(nc__sbuf *sb, int K, const double *recall, const int64_t *support, const char *const *names) {
    double rh = 360.0 / K;
    rh = rh < 14 ? 14 : rh > 30 ? 30 : rh;
    double lf = fmin(13, rh * 0.72);
    size_t maxn = 1;
    int64_t total = 0;
    double bsum = 0;
    int bn = 0;
    for (int i = 0; i < K; i++) {
        size_t l = name_len(names, i, NAME_MAX_CP);
        if (l > maxn) maxn = l;
        total += support[i];
        if (support[i] > 0) {
            bsum += recall[i];
            bn++;
        }
    }
    double ml = 20 + (double)maxn * lf * CHAR_W + 10, mt = 64, pw = 440, ph = K * rh;
    double W = ml + pw + 130, H = mt + ph + 58;
    char title[96];
    snprintf(title, sizeof title, "Per-class accuracy (recall), %lld samples", (long long)total);
    svg_open(sb, W, H, title);
    svgf(sb, "<text x=\"%n\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">%x</text>\n", W / 2,
         title);
    double bal = bn > 0 ? bsum / bn : NAN;
    char b[64];
    /* x grid and ticks */
    for (int k = 0; k <= 5; k++) {
        double v = k / 5.0, x = ml + v * pw;
        svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"%s\"/>\n", x, mt, x, mt + ph + 5,
             k == 0 ? "#444444" : "#e5e5e5");
        svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\">%s</text>\n", x, mt + ph + 18,
             nc__fmt_num(b, sizeof b, v, 1, 'f'));
    }
    svgf(sb, "<line x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#444444\"/>\n", ml, mt + ph, ml + pw, mt + ph);
    svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"middle\">accuracy (recall) of the class</text>\n", ml + pw / 2,
         mt + ph + 40);
    svgf(sb, "<g class=\"bars\" font-size=\"%n\">\n", lf);
    for (int i = 0; i < K; i++) {
        double y = mt + i * rh, v = support[i] > 0 ? recall[i] : 0;
        if (!(v >= 0)) v = 0;
        if (v > 1) v = 1;
        svgf(sb, "<text x=\"%n\" y=\"%n\" text-anchor=\"end\">", ml - 6, y + rh / 2 + lf * 0.35);
        put_name(sb, names, i, NAME_MAX_CP);
        svgf(sb, "</text>\n");
        svgf(sb, "<rect class=\"bar\" data-class=\"%d\" data-value=\"%s\" x=\"%n\" y=\"%n\" width=\"%n\" "
                 "height=\"%n\" fill=\"#4c72b0\"><title>",
             i, support[i] > 0 ? nc__fmt_num(b, sizeof b, recall[i], 6, 'g') : "nan", ml, y + rh * 0.15, v * pw,
             rh * 0.7);
        put_name(sb, names, i, 200);
        if (support[i] > 0) {
            int64_t hit = (int64_t)llround(recall[i] * (double)support[i]);
            svgf(sb, ": %l of %l correct</title></rect>\n", (long long)hit, (long long)support[i]);
            svgf(sb, "<text class=\"value\" x=\"%n\" y=\"%n\">%s", ml + v * pw + 5, y + rh / 2 + lf * 0.35,
                 nc__fmt_num(b, sizeof b, recall[i], 3, 'f'));
            svgf(sb, " (n=%l)</text>\n", (long long)support[i]);
        } else {
            svgf(sb, ": no samples</title></rect>\n");
            svgf(sb, "<text class=\"value\" x=\"%n\" y=\"%n\" fill=\"#888888\">no samples</text>\n", ml + 5,
                 y + rh / 2 + lf * 0.35);
        }
    }
    svgf(sb, "</g>\n");
    if (isfinite(bal)) {
        double x = ml + bal * pw;
        svgf(sb, "<line class=\"balanced\" x1=\"%n\" y1=\"%n\" x2=\"%n\" y2=\"%n\" stroke=\"#c44e52\" "
                 "stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n",
             x, mt - 4, x, mt + ph);
        svgf(sb, "<line x1=\"%n\" y1=\"48\" x2=\"%n\" y2=\"48\" stroke=\"#c44e52\" stroke-width=\"1.5\" "
                 "stroke-dasharray=\"5 3\"/>\n",
             ml, ml + 22);
        svgf(sb, "<text x=\"%n\" y=\"52\">balanced accuracy (mean over classes) %s</text>\n", ml + 28,
             nc__fmt_num(b, sizeof b, bal, 3, 'f'));
    }
    svg_close(sb);
}

/* ------------------------------------------------------------ public API */

static nc_status write_sbuf(nc__sbuf *sb, const char *path) {
    nc_status st = nc__sbuf_check(sb, path);
    if (st == NC_OK) st = nc__write_file_atomic(sb->ctx, path, sb->p, sb->len);
    nc__sbuf_free(sb);
    return st;
}

nc_status nc_svg_training_curves(const nc_history *h, const char *path) {
    if (!h) return NC_ERR_NULL;
    nc_context *ctx = nc__history_context(h);
    if (!path) return nc__error(ctx, NC_ERR_NULL, "nc_svg_training_curves: path is NULL");
    int64_t n;
    const nc_epoch_record *rec = nc__history_records(h, &n);
    if (n == 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_svg_training_curves: %s: the history is empty", path);
    nc__sbuf sb;
    nc__sbuf_init(&sb, ctx);
    nc__svg_curves(&sb, rec, n);
    return write_sbuf(&sb, path);
}

/* The confusion matrix of m, (K, K); NULL when out of memory (message set). */
static int64_t *confusion_of(nc_context *ctx, const nc_metrics *m, int K) {
    int64_t *cm = nc__alloc(ctx, (size_t)K * (size_t)K * sizeof *cm);
    if (!cm) {
        nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "confusion matrix: out of memory");
        return NULL;
    }
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) cm[(size_t)t * K + p] = nc_metrics_confusion(m, t, p);
    return cm;
}

static nc_status check_metrics(nc_context *ctx, const char *fn, const nc_metrics *m, const char *path) {
    if (!ctx) return NC_ERR_NULL;
    if (!m || !path) return nc__error(ctx, NC_ERR_NULL, "%s: %s is NULL", fn, m ? "path" : "metrics");
    if (nc_metrics_num_classes(m) < 2)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: the metrics have %d classes", fn,
                         nc_metrics_num_classes(m));
    if (nc_metrics_count(m) == 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: %s: the metrics counted no sample", fn, path);
    return NC_OK;
}

nc_status nc_svg_confusion_matrix(nc_context *ctx, const nc_metrics *m, const char *const *class_names, int normalize,
                                  const char *path) {
    nc_status st = check_metrics(ctx, "nc_svg_confusion_matrix", m, path);
    if (st != NC_OK) return st;
    int K = nc_metrics_num_classes(m);
    int64_t *cm = confusion_of(ctx, m, K);
    if (!cm) return NC_ERR_OUT_OF_MEMORY;
    nc__sbuf sb;
    nc__sbuf_init(&sb, ctx);
    nc__svg_confusion(&sb, K, cm, class_names, normalize != 0);
    nc__free(ctx, cm);
    return write_sbuf(&sb, path);
}

nc_status nc_svg_per_class_accuracy(nc_context *ctx, const nc_metrics *m, const char *const *class_names,
                                    const char *path) {
    nc_status st = check_metrics(ctx, "nc_svg_per_class_accuracy", m, path);
    if (st != NC_OK) return st;
    int K = nc_metrics_num_classes(m);
    int64_t *sup = nc__alloc(ctx, (size_t)K * sizeof *sup);
    double *rec = nc__alloc(ctx, (size_t)K * sizeof *rec);
    if (!sup || !rec) {
        nc__free(ctx, sup);
        nc__free(ctx, rec);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_svg_per_class_accuracy: out of memory");
    }
    for (int t = 0; t < K; t++) {
        sup[t] = 0;
        for (int p = 0; p < K; p++) sup[t] += nc_metrics_confusion(m, t, p);
        rec[t] = nc_metrics_recall(m, t);
    }
    nc__sbuf sb;
    nc__sbuf_init(&sb, ctx);
    nc__svg_per_class(&sb, K, rec, sup, class_names);
    nc__free(ctx, sup);
    nc__free(ctx, rec);
    return write_sbuf(&sb, path);
}
