/*
 * The parts of Fluent Bit's Go-proxy ABI the plugin uses beyond fluent-bit-go: the API table Fluent
 * Bit hands every Go output (its logger, the output's log level, the instance's cmetrics context),
 * the instance's name, and cmetrics itself. Everything but the API table is resolved by name from
 * the fluent-bit binary, which exports its symbols; a host without them (the project's C test
 * host, Windows builds) gets none of it, and the plugin falls back to its own stderr logger and no
 * metrics.
 */
#ifndef KGO_FLUENTBIT_H
#define KGO_FLUENTBIT_H

#include <stddef.h>
#include <stdint.h>

/* Fluent Bit's log levels (flb_log.h). */
#define KGO_LOG_ERROR 1
#define KGO_LOG_WARN 2
#define KGO_LOG_INFO 3
#define KGO_LOG_DEBUG 4
#define KGO_LOG_TRACE 5

/* What Fluent Bit gave one instance in FLBPluginInit. */
struct kgo_instance {
    void *api;    /* struct flb_api *, or NULL when the host's is not Fluent Bit's */
    void *o_ins;  /* struct flb_output_instance * */
    void *worker; /* struct flb_worker * of the thread that ran FLBPluginInit, or NULL */
    void *cmt;    /* the instance's struct cmt *, or NULL without cmetrics */
    int level;    /* the highest level the instance logs at, 0 for off */
};

/* kgo_attach reads plugin (struct flbgo_output_plugin *) during FLBPluginInit. It returns 1 when
 * the host is Fluent Bit (its API table holds flb_log_print), 0 otherwise (x->api is then NULL). */
int kgo_attach(void *plugin, struct kgo_instance *x);

/* kgo_set_context makes Fluent Bit pass ctx to FLBPluginFlushCtx and FLBPluginExitCtx. */
void kgo_set_context(void *plugin, uintptr_t ctx);

/* kgo_output_name copies the name Fluent Bit prints for the instance (its alias, or plugin.N) to
 * buf, and returns 0 when the host has no flb_output_name. */
int kgo_output_name(struct kgo_instance *x, char *buf, size_t size);

/* kgo_log writes one line through Fluent Bit's logger at level. From a thread Fluent Bit did not
 * create, it borrows the worker captured in Init for the call, so that the line reaches Log_File
 * instead of stderr. */
void kgo_log(struct kgo_instance *x, int level, const char *line);

/* cmetrics: 1 when every function below is available. */
int kgo_metrics_available(void);
void *kgo_counter(void *cmt, const char *name, const char *help, int nlabels, char **labels);
void *kgo_gauge(void *cmt, const char *name, const char *help, int nlabels, char **labels);
void *kgo_histogram(void *cmt, const char *name, const char *help, double *bounds, size_t nbounds,
                    int nlabels, char **labels);
void kgo_counter_set(void *c, double v, int nlabels, char **values);
void kgo_gauge_set(void *g, double v, int nlabels, char **values);
void kgo_histogram_observe(void *h, const double *v, size_t n, int nlabels, char **values);

/* flush.c: 1 when a flush can yield Fluent Bit's coroutine while it waits (the host exports what
 * that needs); kgo_flush_done wakes the flush waiting on the pipe whose write end is fd. */
int kgo_async_flush_available(void);
void kgo_flush_done(int fd);

#endif
