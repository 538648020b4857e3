/*
 * A tiny stand-in for vLLM used by backend-docker's tests: a TEST DOUBLE, never a product
 * feature. Installed as /usr/bin/python3 in FROM-scratch test images, it answers the argv
 * perf-runner gives vLLM:
 *
 *   -m vllm.entrypoints.openai.api_server --host H --port P ...   HTTP server: GET /health -> 200,
 *                                                                  GET /v1/models -> its build
 *   -m vllm.entrypoints.cli.main bench serve --host H --port P ... asks the server for its build,
 *                                                                  prints vLLM's result block and
 *                                                                  writes --result-dir/--result-filename
 *   -m vllm.entrypoints.cli.main bench latency --output-json F     prints "Avg latency", writes F
 *   -m pip install X ...                                           records X (fails for "*missing*")
 *   -c '...find_spec...'                                           prints the site-packages dir
 *   -c '...__version__...'                                         prints the build's version
 *
 * The build label is the first word of $STANDIN_SITE/vllm/build.txt (the agent patch edits it).
 * Faults from the environment: STANDIN_FAULT=crash_at_start|hang|client_hang,
 * STANDIN_CLIENT_EXIT=<code>, STANDIN_CLIENT_MS=<sleep before the run>; STANDIN_ECHO_ENV=<NAME>
 * makes the server print that variable (to test that secrets are masked in our logs).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *site(void) {
    const char *s = getenv("STANDIN_SITE");
    return s && *s ? s : "/usr/lib/python3/dist-packages";
}

static void build_label(char *out, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/vllm/build.txt", site());
    FILE *f = fopen(path, "r");
    snprintf(out, n, "unknown");
    if (!f) return;
    if (fscanf(f, "%63s", out) != 1) snprintf(out, n, "unknown");
    fclose(f);
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static int has(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int fault(const char *name) {
    const char *f = getenv("STANDIN_FAULT");
    return f && strcmp(f, name) == 0;
}

static double speed_of(const char *build) {
    if (strcmp(build, "human") == 0) return 12.5;
    if (strcmp(build, "agent") == 0) return 11.0;
    if (strcmp(build, "baseline") == 0) return 10.0;
    return 9.0;
}

static int serve(int argc, char **argv) {
    char build[64];
    build_label(build, sizeof build);
    const char *host = arg(argc, argv, "--host", "0.0.0.0");
    int port = atoi(arg(argc, argv, "--port", "8000"));
    fprintf(stderr, "INFO: vLLM API server version 0.6.3+standin.%s\n", build);
    const char *echo = getenv("STANDIN_ECHO_ENV");
    if (echo) fprintf(stderr, "env %s=%s\n", echo, getenv(echo) ? getenv(echo) : "");
    if (fault("crash_at_start")) {
        fprintf(stderr, "Traceback (most recent call last):\nRuntimeError: Engine core "
                        "initialization failed. See root cause above.\n");
        return 1;
    }
    if (fault("hang")) for (;;) sleep(60);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = inet_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0) {
        fprintf(stderr, "OSError: [Errno 98] could not bind %s:%d\n", host, port);
        return 1;
    }
    fprintf(stderr, "INFO:     Uvicorn running on http://%s:%d (Press CTRL+C to quit)\n", host, port);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        char req[4096] = {0}, method[16] = {0}, path[256] = {0}, body[512];
        ssize_t n = read(c, req, sizeof req - 1);
        if (n <= 0 || sscanf(req, "%15s %255s", method, path) != 2) { close(c); continue; }
        const char *status = "200 OK";
        if (strcmp(path, "/health") == 0) body[0] = 0;
        else if (strcmp(path, "/v1/models") == 0)
            snprintf(body, sizeof body,
                     "{\"object\":\"list\",\"data\":[{\"id\":\"standin\",\"build\":\"%s\"}]}", build);
        else { status = "404 Not Found"; snprintf(body, sizeof body, "{\"detail\":\"Not Found\"}"); }
        char head[256];
        int h = snprintf(head, sizeof head,
                         "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n", status, strlen(body));
        if (write(c, head, (size_t)h) < 0 || write(c, body, strlen(body)) < 0) {}
        close(c);
        printf("INFO:     127.0.0.1 - \"%s %s HTTP/1.1\" %s\n", method, path, status);
        fflush(stdout);
    }
}

/* GET /v1/models from the server; the build it reports goes to out. */
static int ask_server(const char *host, int port, char *out, size_t n) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = inet_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    const char *q = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(s, q, strlen(q)) < 0) return -1;
    char buf[4096] = {0};
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(s, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
    close(s);
    char *b = strstr(buf, "\"build\":\"");
    if (!b) return -1;
    b += 9;
    size_t i = 0;
    while (b[i] && b[i] != '"' && i + 1 < n) { out[i] = b[i]; i++; }
    out[i] = 0;
    return 0;
}

static int bench(int argc, char **argv, const char *sub) {
    char mine[64];
    build_label(mine, sizeof mine);
    const char *ms = getenv("STANDIN_CLIENT_MS");
    sleep_ms(ms ? atol(ms) : 200);
    if (fault("client_hang")) for (;;) sleep(60);
    const char *code = getenv("STANDIN_CLIENT_EXIT");
    int exit_code = code ? atoi(code) : 0;
    if (strcmp(sub, "latency") == 0) {
        double lat = 1.0 / speed_of(mine);
        printf("Avg latency: %.4f seconds\n", lat);
        const char *out = arg(argc, argv, "--output-json", NULL);
        FILE *f = out ? fopen(out, "w") : NULL;
        if (f) { fprintf(f, "{\"avg_latency\": %.4f, \"build\": \"%s\"}\n", lat, mine); fclose(f); }
        return exit_code;
    }
    const char *host = arg(argc, argv, "--host", "127.0.0.1");
    int port = atoi(arg(argc, argv, "--port", "8000"));
    int prompts = atoi(arg(argc, argv, "--num-prompts", "10"));
    char server[64];
    if (ask_server(host, port, server, sizeof server) != 0) {
        fprintf(stderr, "ValueError: Initial test run failed - Cannot connect to host %s:%d\n", host, port);
        return 1;
    }
    double rps = speed_of(server);
    printf("standin: server build %s, client build %s\n", server, mine);
    printf("============ Serving Benchmark Result ============\n");
    printf("%-40s %-10d\n", "Successful requests:", prompts);
    printf("%-40s %-10.2f\n", "Benchmark duration (s):", prompts / rps);
    printf("%-40s %-10d\n", "Total input tokens:", prompts * 1024);
    printf("%-40s %-10d\n", "Total generated tokens:", prompts * 128);
    printf("%-40s %-10.2f\n", "Request throughput (req/s):", rps);
    printf("%-40s %-10.2f\n", "Output token throughput (tok/s):", rps * 128);
    printf("%-40s %-10.2f\n", "Total Token throughput (tok/s):", rps * 1152);
    printf("---------------Time to First Token----------------\n");
    printf("%-40s %-10.2f\n", "Mean TTFT (ms):", 200.0 / rps);
    printf("%-40s %-10.2f\n", "Median TTFT (ms):", 200.0 / rps);
    printf("%-40s %-10.2f\n", "P99 TTFT (ms):", 250.0 / rps);
    printf("==================================================\n");
    if (has(argc, argv, "--save-result")) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", arg(argc, argv, "--result-dir", "."),
                 arg(argc, argv, "--result-filename", "result.json"));
        FILE *f = fopen(path, "w");
        if (!f) { fprintf(stderr, "OSError: cannot write %s\n", path); return 1; }
        fprintf(f, "{\"completed\": %d, \"request_throughput\": %.2f, \"server_build\": \"%s\", "
                   "\"client_build\": \"%s\"}\n", prompts, rps, server, mine);
        fclose(f);
    }
    return exit_code;
}

static int pip(int argc, char **argv) {
    mkdir("/opt", 0755);
    mkdir("/opt/standin", 0755);
    FILE *f = fopen("/opt/standin/pip.txt", "w");
    for (int i = 1; i < argc; i++) {
        if (strstr(argv[i], "missing")) {
            fprintf(stderr, "ERROR: HTTP error 404 while getting %s\n", argv[i]);
            return 1;
        }
        if (f) fprintf(f, "%s\n", argv[i]);
    }
    if (f) fclose(f);
    printf("Successfully installed vllm-0.6.3+standin\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "-c") == 0) {
        if (strstr(argv[2], "find_spec")) { printf("%s\n", site()); return 0; }
        if (strstr(argv[2], "version")) {
            char b[64];
            build_label(b, sizeof b);
            printf("0.6.3+standin.%s\n", b);
            return 0;
        }
        fprintf(stderr, "ModuleNotFoundError: No module named 'torch'\n");
        return 1;
    }
    if (argc >= 3 && strcmp(argv[1], "-m") == 0) {
        if (strcmp(argv[2], "vllm.entrypoints.openai.api_server") == 0) return serve(argc, argv);
        if (strcmp(argv[2], "pip") == 0) return pip(argc, argv);
        if (strcmp(argv[2], "vllm.entrypoints.cli.main") == 0 && argc >= 5 && strcmp(argv[3], "bench") == 0)
            return bench(argc, argv, argv[4]);
    }
    fprintf(stderr, "standin: unsupported invocation\n");
    return 2;
}
