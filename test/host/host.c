/*
 * host: loads a Fluent Bit Go output plugin (.so) and drives it through the
 * exact ABI Fluent Bit's Go proxy uses (src/proxy/go/go.c), so the end-to-end
 * tests exercise the real library without a Fluent Bit binary.
 *
 *   host MANIFEST
 *
 * MANIFEST is a text file, one directive per line; '#' starts a comment line.
 * A value runs to the end of its line (it may contain spaces).
 *
 *   so PATH                    the plugin library (required, first)
 *   name NAME                  the name FLBPluginRegister must register
 *   instance                   starts the next [OUTPUT] instance (0, 1, ...)
 *   prop KEY VALUE             a property of the current instance; VALUE may be
 *                              empty. Lookup is case-insensitive, as in Fluent Bit
 *   flush INST THREAD TAG PATH a flush job: FLBPluginFlushCtx(ctx of INST, bytes
 *                              of file PATH, TAG) run by flush thread THREAD
 *   reflush MAX DELAY_MS       as Fluent Bit's retries: a flush that returns
 *                              FLB_RETRY is run again (the same bytes, in a fresh
 *                              buffer) by its thread, DELAY_MS later, after the
 *                              thread's other pending jobs, up to MAX more times
 *                              (default 0: never)
 *   gap MS                     each flush thread sleeps MS after every flush, as
 *                              Fluent Bit's worker waits for the next chunk:
 *                              the Go runtime then goes idle between flushes
 *                              (default 0: flushes back to back)
 *   exit MODE                  ctx (default): FLBPluginExitCtx(ctx) per instance
 *                              null: one FLBPluginExitCtx(NULL), as --dry-run
 *                              plugin: FLBPluginExit() per instance
 *                              none: no exit call
 *
 * Order of calls, as in Fluent Bit: FLBPluginRegister once; FLBPluginInit per
 * instance in manifest order on the main thread, with one shared plugin struct
 * whose o_ins and context are set per instance (remote_context read back after
 * each Init); then all flush threads start together (a barrier), each running
 * its jobs in manifest order (jobs to flush again go to the back of its queue);
 * the exit calls after every thread has joined;
 * FLBPluginUnregister last. Instances whose Init failed still get their exit
 * call (Fluent Bit destroys every instance), with whatever context they have.
 *
 * Every chunk is copied into a fresh malloc'd buffer for the call and wiped
 * and freed as soon as the call returns, so a plugin that keeps pointers into
 * a chunk after returning sends garbage that the tests notice.
 *
 * stdout, one line per event (the tests parse these):
 *   register rc=N type=N proxy=N name=NAME
 *   init I rc=N ctx=0x...|null
 *   flush J rc=N ms=N          J is the job's index in manifest order
 *   reflush J try=K rc=N ms=N  the K-th flush again of job J (K from 1)
 *   exitctx I rc=N | exitctx null rc=N | exit I rc=N
 *   rss J kb=N                 after flush J (first try): the process's
 *                              resident set now (/proc/self/statm)
 *   rss start kb=N             before the library is loaded: the host alone
 *   rss init kb=N              after every Init
 *   rss peak kb=N after=K      the peak while the flush threads ran (sampled
 *                              every 2 ms), seen after K flushes had ended
 *   usage flush user_us=N sys_us=N host_us=N maxrss_kb=N csw=N
 *                              after the flush threads joined (only when there
 *                              were jobs): the process's CPU time (getrusage,
 *                              every thread, the Go runtime's included) from
 *                              just before the threads started to just after
 *                              they joined; host_us, the part of it the host
 *                              spent on its own work (reading, wiping and
 *                              freeing chunks, its output lines and resident
 *                              set samples, by thread CPU clocks); maxrss_kb,
 *                              ru_maxrss, which Linux carries across exec (it
 *                              includes the parent's peak: see "rss peak");
 *                              csw, the voluntary context switches of every
 *                              thread but the sampler's: one per thread that
 *                              sleeps and wakes up again
 *   unregister
 *   done
 * The host exits 0 when it ran the whole manifest, whatever the plugin
 * returned; 2 on a bad manifest or a library it cannot load; 3 when the
 * registration is wrong. Its own diagnostics go to stderr prefixed "host: ".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

/* The ABI, as in fluent-bit-go's output/flb_plugin.h and flb_output.h. */
#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11
#define FLB_RETRY 2

struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

struct flb_api {
    char *(*output_get_property)(char *, void *);
    char *_;
};

/* Fluent Bit's struct has a proxy pointer after remote_context. */
struct flb_plugin_proxy_context {
    void *remote_context;
    void *proxy;
};

struct flbgo_output_plugin {
    void *_;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
};

typedef int (*register_fn)(void *);
typedef int (*init_fn)(void *);
typedef int (*flush_ctx_fn)(void *, void *, int, char *);
typedef int (*exit_ctx_fn)(void *);
typedef int (*exit_fn)(void);
typedef void (*unregister_fn)(void *);

struct prop {
    char *key;
    char *value;
};

struct instance {
    struct prop *props;
    int nprops;
    struct flb_plugin_proxy_context context;
};

struct job {
    int instance;
    int thread;
    char *tag;
    char *path;
};

static struct instance *instances;
static int ninstances;
static struct job *jobs;
static int njobs;
static int nthreads;
static int reflush_max;
static int reflush_delay_ms;
static int gap_ms;
static flush_ctx_fn flush_ctx;
static pthread_barrier_t start;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
/* CPU time the flush threads spent on the host's own work, in µs (under out_mu). */
static long long host_cpu_us;
/* Context switches of the resident-set sampler, the host's own (under out_mu). */
static long host_csw;

static void fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("host: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    exit(code);
}

static void emit(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_mu);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fail(2, "out of memory");
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        fail(2, "out of memory");
    }
    return d;
}

/* The output_get_property callback: o_ins is the instance being asked. */
static char *get_property(char *key, void *o_ins)
{
    struct instance *ins = o_ins;
    int i;

    if (key == NULL || ins == NULL) {
        return NULL;
    }
    for (i = 0; i < ins->nprops; i++) {
        if (strcasecmp(ins->props[i].key, key) == 0) {
            return ins->props[i].value;
        }
    }
    return NULL;
}

/* next_word cuts the first space-separated word off *s. */
static char *next_word(char **s, int lineno)
{
    char *w = *s;
    char *end;

    while (*w == ' ' || *w == '\t') {
        w++;
    }
    if (*w == '\0') {
        fail(2, "manifest line %d: missing field", lineno);
    }
    end = w;
    while (*end != '\0' && *end != ' ' && *end != '\t') {
        end++;
    }
    if (*end != '\0') {
        *end++ = '\0';
    }
    *s = end;
    return w;
}

static int to_int(const char *s, int lineno)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 1 << 20) {
        fail(2, "manifest line %d: bad number %s", lineno, s);
    }
    return (int) v;
}

static char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        fail(2, "open %s: %s", path, strerror(errno));
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail(2, "size of %s: %s", path, strerror(errno));
    }
    buf = malloc(n > 0 ? (size_t) n : 1);
    if (buf == NULL) {
        fail(2, "out of memory");
    }
    if (n > 0 && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        fail(2, "read %s", path);
    }
    fclose(f);
    *len = n;
    return buf;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* thread_cpu_us is the calling thread's CPU time, in µs. */
static long long thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long timeval_us(struct timeval tv)
{
    return (long long) tv.tv_sec * 1000000 + tv.tv_usec;
}

static void sleep_ms(double ms)
{
    struct timespec ts;

    if (ms <= 0) {
        return;
    }
    ts.tv_sec = (time_t) (ms / 1e3);
    ts.tv_nsec = (long) ((ms - ts.tv_sec * 1e3) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* rss_kb is the process's resident set size now, in KiB (0 if unknown). */
static long rss_kb(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f != NULL) {
        if (fscanf(f, "%*ld %ld", &pages) != 1) {
            pages = 0;
        }
        fclose(f);
    }
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The resident set's peak while flush threads run, sampled every 2 ms by rss_sampler (the
 * kernel's ru_maxrss also counts start-up), and how many flushes had ended when it was seen. */
static volatile int sampling;
static int flushes_done;
static long peak_kb;
static int peak_after;

static void *rss_sampler(void *arg)
{
    (void) arg;
    while (__atomic_load_n(&sampling, __ATOMIC_ACQUIRE)) {
        long kb = rss_kb();

        if (kb > peak_kb) {
            peak_kb = kb;
            peak_after = __atomic_load_n(&flushes_done, __ATOMIC_RELAXED);
        }
        sleep_ms(2);
    }
    /* Its reads of /proc, and its wake-ups, are the host's own work, not the plugin's. */
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    pthread_mutex_lock(&out_mu);
    host_cpu_us += thread_cpu_us();
    host_csw += ru.ru_nvcsw;
    pthread_mutex_unlock(&out_mu);
    return NULL;
}

/* run_job flushes job j once (try 0 is the first flush) and returns the rc. */
static int run_job(int j, int try)
{
    struct job *jb = &jobs[j];
    long len;
    long long c0 = thread_cpu_us();
    char *data = read_file(jb->path, &len);
    char *tag = xstrdup(jb->tag);
    long long own = thread_cpu_us() - c0;
    double t0 = now_ms();
    int rc;

    rc = flush_ctx(instances[jb->instance].context.remote_context, data, (int) len, tag);
    c0 = thread_cpu_us();
    if (try == 0) {
        emit("flush %d rc=%d ms=%.0f", j, rc, now_ms() - t0);
        emit("rss %d kb=%ld", j, rss_kb());
        __atomic_add_fetch(&flushes_done, 1, __ATOMIC_RELAXED);
    }
    else {
        emit("reflush %d try=%d rc=%d ms=%.0f", j, try, rc, now_ms() - t0);
    }
    /* The chunk belongs to Fluent Bit: it is gone once the call returns. */
    memset(data, 0xA5, (size_t) len);
    memset(tag, 'X', strlen(tag));
    free(data);
    free(tag);
    own += thread_cpu_us() - c0;
    pthread_mutex_lock(&out_mu);
    host_cpu_us += own;
    pthread_mutex_unlock(&out_mu);
    return rc;
}

/* A job waiting in a thread's queue: its next flush is try number try, not before due. */
struct pending {
    int job;
    int try;
    double due;
};

static void *flush_thread(void *arg)
{
    int thread = (int) (intptr_t) arg;
    struct pending *queue;
    int n = 0;
    int head = 0;
    int count = 0;
    int j;

    for (j = 0; j < njobs; j++) {
        n += jobs[j].thread == thread;
    }
    /* A ring of n slots: each job is in the queue at most once at a time. */
    queue = calloc(n > 0 ? (size_t) n : 1, sizeof(*queue));
    if (queue == NULL) {
        fail(2, "out of memory");
    }
    for (j = 0; j < njobs; j++) {
        if (jobs[j].thread == thread) {
            queue[count].job = j;
            count++;
        }
    }

    pthread_barrier_wait(&start);
    while (count > 0) {
        struct pending p = queue[head];
        int rc;

        head = (head + 1) % n;
        count--;
        /* Jobs go to the back with increasing due times: the front is due first. */
        sleep_ms(p.due - now_ms());
        rc = run_job(p.job, p.try);
        sleep_ms(gap_ms);
        if (rc == FLB_RETRY && p.try < reflush_max) {
            struct pending *q = &queue[(head + count) % n];

            q->job = p.job;
            q->try = p.try + 1;
            q->due = now_ms() + reflush_delay_ms;
            count++;
        }
    }
    free(queue);
    return NULL;
}

static void *symbol(void *lib, const char *name, int required)
{
    void *p = dlsym(lib, name);
    if (p == NULL && required) {
        fail(2, "symbol %s not exported", name);
    }
    return p;
}

int main(int argc, char **argv)
{
    FILE *mf;
    char line[8192];
    int lineno = 0;
    char *so = NULL;
    char *want_name = NULL;
    char *exit_mode = "ctx";
    void *lib;
    struct flb_plugin_proxy_def def;
    struct flb_api api;
    struct flbgo_output_plugin plugin;
    pthread_t *threads;
    int i;
    int rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fail(2, "usage: host MANIFEST");
    }
    mf = fopen(argv[1], "r");
    if (mf == NULL) {
        fail(2, "open %s: %s", argv[1], strerror(errno));
    }
    while (fgets(line, sizeof(line), mf) != NULL) {
        char *s = line;
        char *word;
        size_t n = strlen(line);

        lineno++;
        if (n > 0 && line[n - 1] != '\n' && !feof(mf)) {
            fail(2, "manifest line %d: too long", lineno);
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        if (*s == '\0' || *s == '#') {
            continue;
        }
        word = next_word(&s, lineno);
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        if (strcmp(word, "so") == 0) {
            so = xstrdup(s);
        }
        else if (strcmp(word, "name") == 0) {
            want_name = xstrdup(s);
        }
        else if (strcmp(word, "instance") == 0) {
            instances = xrealloc(instances, sizeof(*instances) * (ninstances + 1));
            memset(&instances[ninstances], 0, sizeof(*instances));
            ninstances++;
        }
        else if (strcmp(word, "prop") == 0) {
            struct instance *ins;
            char *key;

            if (ninstances == 0) {
                fail(2, "manifest line %d: prop before instance", lineno);
            }
            ins = &instances[ninstances - 1];
            key = next_word(&s, lineno);
            while (*s == ' ' || *s == '\t') {
                s++;
            }
            ins->props = xrealloc(ins->props, sizeof(*ins->props) * (ins->nprops + 1));
            ins->props[ins->nprops].key = xstrdup(key);
            ins->props[ins->nprops].value = xstrdup(s);
            ins->nprops++;
        }
        else if (strcmp(word, "flush") == 0) {
            struct job jb;

            jb.instance = to_int(next_word(&s, lineno), lineno);
            jb.thread = to_int(next_word(&s, lineno), lineno);
            jb.tag = xstrdup(next_word(&s, lineno));
            while (*s == ' ' || *s == '\t') {
                s++;
            }
            if (*s == '\0') {
                fail(2, "manifest line %d: missing chunk path", lineno);
            }
            jb.path = xstrdup(s);
            if (jb.instance >= ninstances) {
                fail(2, "manifest line %d: no instance %d", lineno, jb.instance);
            }
            if (jb.thread + 1 > nthreads) {
                nthreads = jb.thread + 1;
            }
            jobs = xrealloc(jobs, sizeof(*jobs) * (njobs + 1));
            jobs[njobs++] = jb;
        }
        else if (strcmp(word, "reflush") == 0) {
            reflush_max = to_int(next_word(&s, lineno), lineno);
            reflush_delay_ms = to_int(next_word(&s, lineno), lineno);
        }
        else if (strcmp(word, "gap") == 0) {
            gap_ms = to_int(next_word(&s, lineno), lineno);
        }
        else if (strcmp(word, "exit") == 0) {
            if (strcmp(s, "ctx") != 0 && strcmp(s, "null") != 0 &&
                strcmp(s, "plugin") != 0 && strcmp(s, "none") != 0) {
                fail(2, "manifest line %d: bad exit mode %s", lineno, s);
            }
            exit_mode = xstrdup(s);
        }
        else {
            fail(2, "manifest line %d: unknown directive %s", lineno, word);
        }
    }
    fclose(mf);
    if (so == NULL) {
        fail(2, "manifest: no so line");
    }

    emit("rss start kb=%ld", rss_kb());
    /* Fluent Bit: dlopen(path, RTLD_LAZY), then the symbols it knows. */
    lib = dlopen(so, RTLD_LAZY);
    if (lib == NULL) {
        fail(2, "dlopen %s: %s", so, dlerror());
    }
    register_fn reg = (register_fn) symbol(lib, "FLBPluginRegister", 1);
    init_fn init = (init_fn) symbol(lib, "FLBPluginInit", 1);
    flush_ctx = (flush_ctx_fn) symbol(lib, "FLBPluginFlushCtx", njobs > 0);
    exit_ctx_fn exit_ctx = (exit_ctx_fn) symbol(lib, "FLBPluginExitCtx",
                                                strcmp(exit_mode, "ctx") == 0 ||
                                                strcmp(exit_mode, "null") == 0);
    exit_fn exit_plugin = (exit_fn) symbol(lib, "FLBPluginExit", strcmp(exit_mode, "plugin") == 0);
    unregister_fn unreg = (unregister_fn) symbol(lib, "FLBPluginUnregister", 1);

    memset(&def, 0, sizeof(def));
    rc = reg(&def);
    emit("register rc=%d type=%d proxy=%d name=%s", rc, def.type, def.proxy,
         def.name != NULL ? def.name : "(null)");
    if (rc == -1 || def.type != FLB_PROXY_OUTPUT_PLUGIN || def.proxy != FLB_PROXY_GOLANG ||
        def.name == NULL || (want_name != NULL && strcmp(def.name, want_name) != 0)) {
        fail(3, "bad registration");
    }

    /* One plugin struct for every instance; o_ins and context set per instance. */
    memset(&api, 0, sizeof(api));
    api.output_get_property = get_property;
    memset(&plugin, 0, sizeof(plugin));
    plugin.api = &api;
    for (i = 0; i < ninstances; i++) {
        instances[i].context.remote_context = NULL;
        instances[i].context.proxy = &def;
        plugin.o_ins = &instances[i];
        plugin.context = &instances[i].context;
        rc = init(&plugin);
        if (instances[i].context.remote_context == NULL) {
            emit("init %d rc=%d ctx=null", i, rc);
        }
        else {
            emit("init %d rc=%d ctx=%p", i, rc, instances[i].context.remote_context);
        }
    }

    emit("rss init kb=%ld", rss_kb());
    if (nthreads > 0) {
        struct rusage ru0, ru1;

        threads = calloc((size_t) nthreads, sizeof(*threads));
        if (threads == NULL || pthread_barrier_init(&start, NULL, (unsigned) nthreads) != 0) {
            fail(2, "cannot set up %d threads", nthreads);
        }
        pthread_t sampler;

        /* The sampler runs inside the measured window, so that all of its CPU time, which
         * host_us counts, is in it. */
        getrusage(RUSAGE_SELF, &ru0);
        sampling = 1;
        if (pthread_create(&sampler, NULL, rss_sampler, NULL) != 0) {
            fail(2, "pthread_create failed");
        }
        for (i = 0; i < nthreads; i++) {
            if (pthread_create(&threads[i], NULL, flush_thread, (void *) (intptr_t) i) != 0) {
                fail(2, "pthread_create failed");
            }
        }
        for (i = 0; i < nthreads; i++) {
            pthread_join(threads[i], NULL);
        }
        __atomic_store_n(&sampling, 0, __ATOMIC_RELEASE);
        pthread_join(sampler, NULL);
        getrusage(RUSAGE_SELF, &ru1);
        emit("rss peak kb=%ld after=%d", peak_kb, peak_after);
        emit("usage flush user_us=%lld sys_us=%lld host_us=%lld maxrss_kb=%ld csw=%ld",
             timeval_us(ru1.ru_utime) - timeval_us(ru0.ru_utime),
             timeval_us(ru1.ru_stime) - timeval_us(ru0.ru_stime), host_cpu_us, ru1.ru_maxrss,
             ru1.ru_nvcsw - ru0.ru_nvcsw - host_csw);
        pthread_barrier_destroy(&start);
        free(threads);
    }

    if (strcmp(exit_mode, "ctx") == 0) {
        for (i = 0; i < ninstances; i++) {
            rc = exit_ctx(instances[i].context.remote_context);
            emit("exitctx %d rc=%d", i, rc);
        }
    }
    else if (strcmp(exit_mode, "null") == 0) {
        rc = exit_ctx(NULL);
        emit("exitctx null rc=%d", rc);
    }
    else if (strcmp(exit_mode, "plugin") == 0) {
        for (i = 0; i < ninstances; i++) {
            rc = exit_plugin();
            emit("exit %d rc=%d", i, rc);
        }
    }

    unreg(&def);
    emit("unregister");
    emit("done");
    /* Fluent Bit never dlcloses a Go plugin (the Go runtime cannot unload). */
    return 0;
}
