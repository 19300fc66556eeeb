#include "fluentbit.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32
static void *host_symbol(const char *name)
{
    (void) name;
    return NULL;
}
#else
#include <dlfcn.h>
/* The fluent-bit binary exports its symbols (ENABLE_EXPORTS, as the official packages). */
static void *host_symbol(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}
#endif

/* Fluent Bit's struct flbgo_output_plugin (src/proxy/go/go.h), the same from 2.1 to 5.1: one per
 * loaded library, whose api, o_ins and context are set before each instance's Init. */
struct flbgo_output_plugin {
    char *name;
    void *api;
    void *o_ins;
    struct {
        void *remote_context;
    } *context;
};

/* Fluent Bit's struct flb_api (include/fluent-bit/flb_api.h), unchanged from 2.1 to 5.1 but for
 * members appended after custom_log_check. */
struct flb_api {
    const char *(*output_get_property)(const char *, void *);
    const char *(*input_get_property)(const char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(void *, int);
};

int kgo_attach(void *plugin, struct kgo_instance *x)
{
    struct flbgo_output_plugin *p = plugin;
    struct flb_api *api = p->api;
    void *log_print = host_symbol("flb_log_print");
    void *(*worker_get)(void) = (void *(*)(void)) host_symbol("flb_worker_get");
    int level;

    memset(x, 0, sizeof(*x));
    x->o_ins = p->o_ins;
    /* A host's table may be shorter than Fluent Bit's (fluent-bit-go declares two members): read
     * past output_get_property only when the host is Fluent Bit, and its table is as expected. */
    if (api == NULL || log_print == NULL || (void *) api->log_print != log_print) {
        return 0;
    }
    x->api = api;
    x->worker = worker_get != NULL ? worker_get() : NULL;
    for (level = KGO_LOG_ERROR; level <= KGO_LOG_TRACE && api->output_log_check(p->o_ins, level); level++) {
        x->level = level;
    }
    if (kgo_metrics_available()) {
        x->cmt = api->output_get_cmt_instance(p->o_ins);
    }
    return 1;
}

void kgo_set_context(void *plugin, uintptr_t ctx)
{
    ((struct flbgo_output_plugin *) plugin)->context->remote_context = (void *) ctx;
}

int kgo_output_name(struct kgo_instance *x, char *buf, size_t size)
{
    const char *(*output_name)(void *) = (const char *(*)(void *)) host_symbol("flb_output_name");
    const char *name;

    if (output_name == NULL || x->o_ins == NULL || (name = output_name(x->o_ins)) == NULL) {
        return 0;
    }
    snprintf(buf, size, "%s", name);
    return 1;
}

void kgo_log(struct kgo_instance *x, int level, const char *line)
{
    struct flb_api *api = x->api;
    void *(*worker_get)(void) = (void *(*)(void)) host_symbol("flb_worker_get");
    void **slot;
    void *old;

    /* flb_log_print sends a line to the logger thread (and so to Log_File) when the calling
     * thread's flb_worker_ctx is set, as on every thread Fluent Bit starts, and to stderr when
     * not, as on the Go runtime's own threads. For the duration of the call such a thread takes
     * the worker of the thread that initialised the instance; dlsym of a thread-local symbol
     * gives the calling thread's copy. */
    if (x->worker == NULL || worker_get == NULL || worker_get() != NULL ||
        (slot = host_symbol("flb_worker_ctx")) == NULL) {
        api->log_print(level, NULL, 0, "%s", line);
        return;
    }
    old = *slot;
    *slot = x->worker;
    api->log_print(level, NULL, 0, "%s", line);
    *slot = old;
}

/* cmetrics, resolved once. */
static struct {
    int resolved, ok;
    void *(*counter_create)(void *, char *, char *, char *, char *, int, char **);
    int (*counter_set)(void *, uint64_t, double, int, char **);
    void *(*gauge_create)(void *, char *, char *, char *, char *, int, char **);
    int (*gauge_set)(void *, uint64_t, double, int, char **);
    void *(*buckets_create_size)(double *, size_t);
    void *(*histogram_create)(void *, char *, char *, char *, char *, void *, int, char **);
    int (*histogram_observe)(void *, uint64_t, double, int, char **);
    uint64_t (*time_now)(void);
} cmt;

int kgo_metrics_available(void)
{
    if (!cmt.resolved) {
        cmt.counter_create = host_symbol("cmt_counter_create");
        cmt.counter_set = host_symbol("cmt_counter_set");
        cmt.gauge_create = host_symbol("cmt_gauge_create");
        cmt.gauge_set = host_symbol("cmt_gauge_set");
        cmt.buckets_create_size = host_symbol("cmt_histogram_buckets_create_size");
        cmt.histogram_create = host_symbol("cmt_histogram_create");
        cmt.histogram_observe = host_symbol("cmt_histogram_observe");
        cmt.time_now = host_symbol("cfl_time_now");
        cmt.ok = cmt.counter_create && cmt.counter_set && cmt.gauge_create && cmt.gauge_set &&
                 cmt.buckets_create_size && cmt.histogram_create && cmt.histogram_observe && cmt.time_now;
        cmt.resolved = 1;
    }
    return cmt.ok;
}

/* Metrics are named as Fluent Bit names its outputs' own: fluentbit_output_<name>. */
static char ns[] = "fluentbit";
static char subsystem[] = "output";

void *kgo_counter(void *c, const char *name, const char *help, int nlabels, char **labels)
{
    return cmt.counter_create(c, ns, subsystem, (char *) name, (char *) help, nlabels, labels);
}

void *kgo_gauge(void *c, const char *name, const char *help, int nlabels, char **labels)
{
    return cmt.gauge_create(c, ns, subsystem, (char *) name, (char *) help, nlabels, labels);
}

void *kgo_histogram(void *c, const char *name, const char *help, double *bounds, size_t nbounds,
                    int nlabels, char **labels)
{
    void *buckets = cmt.buckets_create_size(bounds, nbounds);

    if (buckets == NULL) {
        return NULL;
    }
    return cmt.histogram_create(c, ns, subsystem, (char *) name, (char *) help, buckets, nlabels, labels);
}

void kgo_counter_set(void *c, double v, int nlabels, char **values)
{
    cmt.counter_set(c, cmt.time_now(), v, nlabels, values);
}

void kgo_gauge_set(void *g, double v, int nlabels, char **values)
{
    cmt.gauge_set(g, cmt.time_now(), v, nlabels, values);
}

void kgo_histogram_observe(void *h, const double *v, size_t n, int nlabels, char **values)
{
    uint64_t now = cmt.time_now();
    for (size_t i = 0; i < n; i++) {
        cmt.histogram_observe(h, now, v[i], nlabels, values);
    }
}
