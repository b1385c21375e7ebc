/* main.c — nc-train: the program most users meet first. Parses the options (a mode
 * word, then getopt_long flags), merges them over the run's config.json for resume /
 * evaluate / test, sets up the context and the data, and hands over to the runs
 * (folds.c). Ctrl-C finishes the current batch (or stops the evaluation or the channel
 * statistics through the progress callback), saves last.safetensors, exits 130. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t g_interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C stops at once */
}

/* The library's long calls (channel statistics, evaluation) ask this between units of
 * work: the first Ctrl-C ends them with NC_ERR_CANCELLED (fail_lib turns that into
 * exit 130). Saves are never stopped: the checkpoint is what Ctrl-C wants kept. With
 * --distributed the ranks agree per batch instead (run.c), so nothing is stopped here. */
static int stop_on_sigint(const nc_progress *p, void *user) {
    (void)user;
    return g_interrupted && p->phase != NC_PHASE_SAVE ? NC_PROGRESS_STOP : NC_PROGRESS_CONTINUE;
}

static const char *const mode_names[] = {"train", "resume", "evaluate", "test"};

/* Collects the command line's option strings into cl[] (NULL = not given).
 * Returns 0, 1 after --help, 2 on bad usage. */
static int parse_command_line(int argc, char **argv, const char **cl) {
    struct option longopts[OPT_COUNT + 1];
    for (int i = 0; i < OPT_COUNT; i++) {
        longopts[i].name = option_defs[i].name;
        longopts[i].has_arg = option_defs[i].arg == 0 ? no_argument
                              : option_defs[i].arg == 1 ? required_argument
                                                        : optional_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 256 + i;
    }
    memset(&longopts[OPT_COUNT], 0, sizeof longopts[OPT_COUNT]);
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') { /* the mode as the first word */
        int known = 0;
        for (int m = 0; m < 4; m++) known |= strcmp(argv[1], mode_names[m]) == 0;
        if (!known) {
            fprintf(stderr, PROG ": unknown mode '%s' (train, resume, evaluate or test; try --help)\n", argv[1]);
            return EXIT_USAGE;
        }
        cl[OPT_MODE] = argv[1];
        first = 2;
    }
    opterr = 0;
    optind = first;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') return 1;
        if (c == ':') {
            fprintf(stderr, PROG ": option '%s' needs a value (try --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
        if (c < 256 || c >= 256 + OPT_COUNT) {
            fprintf(stderr, PROG ": unknown option '%s' (try --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
        int id = c - 256;
        if (id == OPT_HELP) return 1;
        if (id == OPT_MODE && first == 2 && strcmp(optarg, cl[OPT_MODE]) != 0) {
            fprintf(stderr, PROG ": mode given twice ('%s' and --mode %s) (try --help)\n", cl[OPT_MODE], optarg);
            return EXIT_USAGE;
        }
        cl[id] = option_defs[id].arg == 0 ? "1" : option_defs[id].arg == 2 && !optarg ? "1" : optarg;
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", argv[optind]);
        return EXIT_USAGE;
    }
    return 0;
}

/* The measured normalisation becomes the effective --mean/--std (saved in config.json). */
static void format_list(const float *v, int n, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%.9g", i ? "," : "", (double)v[i]);
}

int main(int argc, char **argv) {
    const char *cl[OPT_COUNT] = {0};
    int rc = parse_command_line(argc, argv, cl);
    if (rc == 1) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (rc != 0) return rc;
    if (nc_version() != NC_VERSION)
        fprintf(stderr, PROG ": warning: built against neurc %d.%d.%d but running %s\n", NC_VERSION_MAJOR,
                NC_VERSION_MINOR, NC_VERSION_PATCH, nc_version_string());

    cfg c;
    memset(&c, 0, sizeof c);
    const char *mode_s = cl[OPT_MODE] ? cl[OPT_MODE] : option_defs[OPT_MODE].def;
    const char *out = cl[OPT_OUTPUT_DIR] ? cl[OPT_OUTPUT_DIR] : option_defs[OPT_OUTPUT_DIR].def;
    char **keys = NULL, **vals = NULL;
    int nkeys = 0;
    char cfg_path[4200], err[4400];
    if (path_join(cfg_path, sizeof cfg_path, out, "config.json")) return EXIT_USAGE;
    int reuse = strcmp(mode_s, "resume") == 0 || strcmp(mode_s, "evaluate") == 0 || strcmp(mode_s, "test") == 0;
    if (reuse) {
        int r = config_read(cfg_path, &keys, &vals, &nkeys, err, sizeof err);
        if (r != 0) {
            fprintf(stderr, PROG ": %s%s\n", err,
                    r == -1 ? " (is --output-dir the directory of a run made by `" PROG " train`?)" : "");
            return EXIT_FAIL;
        }
    }
    cfg_fill(&c, cl, keys, vals, nkeys);
    if ((rc = cfg_resolve(&c)) != 0) {
        config_free(keys, vals, nkeys);
        return rc;
    }

    if (c.mode == MODE_TRAIN && !c.force && file_exists(cfg_path)) {
        config_free(keys, vals, nkeys);
        return fail_msg("%s already holds a run; continue it with `resume`, or start over with --force", c.out);
    }

    nc_context *ctx = NULL;
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = c.backend;
    co.num_threads = c.threads;
    co.precision = c.precision;
    co.conv_algorithm = c.conv_algorithm;
    nc_status st = nc_context_create(&co, &ctx);
    if (st != NC_OK) {
        fprintf(stderr, PROG ": creating the context (backend %s, precision %s, %d threads): %s\n", c.val[OPT_BACKEND],
                c.val[OPT_PRECISION], c.threads, nc_status_str(st));
        config_free(keys, vals, nkeys);
        return EXIT_FAIL;
    }
    if (dist_start(&c, ctx, &argc, &argv) != 0) {
        dist_stop(&c, EXIT_FAIL);
        nc_context_destroy(ctx);
        config_free(keys, vals, nkeys);
        return EXIT_FAIL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (!c.distributed) nc_context_set_progress(ctx, stop_on_sigint, NULL);

    data d;
    char mean_buf[256], std_buf[256];
    rc = data_open(&c, ctx, &d);
    if (rc == 0 && !c.has_norm) {
        format_list(d.mean, d.channels, mean_buf, sizeof mean_buf);
        format_list(d.std, d.channels, std_buf, sizeof std_buf);
        c.val[OPT_MEAN] = mean_buf;
        c.val[OPT_STD] = std_buf;
    }
    /* config.json (and split.csv) are written by data_commit once the run has
     * something to save: a run that fails before that changes no file */
    if (rc == 0) rc = run_all(&c, ctx, &d);
    data_close(&d);
    dist_stop(&c, rc);
    nc_context_destroy(ctx);
    config_free(keys, vals, nkeys);
    return rc;
}
