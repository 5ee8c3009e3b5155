/*
 * A fake libnvidia-ml.so for basin's NVML tests (tests/nvml_fake.rs): it exports the NVML
 * symbols basin's meter and GPU description call, with the signatures of nvml.h, and answers
 * them from a script, so the whole path through nvml-wrapper (dlopen, dlsym, return codes) runs
 * on a host without a GPU. It is never built into basin itself.
 *
 * Build: cc -shared -fPIC -O1 -DFAKE_NVML_SCRIPT='"/path/to/script"' -o DIR/libnvidia-ml.so fake_nvml.c
 * The script is read by nvmlInit_v2; one directive per line, `#` starts a comment:
 *
 *   init CODE                 nvmlInit_v2 returns CODE (e.g. 9 = NVML_ERROR_DRIVER_NOT_LOADED)
 *   driver VERSION            nvmlSystemGetDriverVersion
 *   cuda VERSION              nvmlSystemGetCudaDriverVersion_v2 (1000 x major + 10 x minor)
 *   device NAME...            starts a device (the rest of the line is its name)
 *   energy MJ MJ ...          total-energy counter (mJ) of successive reads; the last repeats
 *   energy_rate MW            instead: the counter grows at MW milliwatts of wall-clock time since
 *                             nvmlInit_v2 (CLOCK_MONOTONIC), a GPU drawing a constant power
 *   no_energy                 the energy call returns NVML_ERROR_NOT_SUPPORTED (pre-Volta)
 *   power MW MW ...           power (mW) of successive reads; the last repeats
 *   lost_after N              after N successful energy/power reads every device call
 *                             returns NVML_ERROR_GPU_IS_LOST (the GPU fell off the bus)
 *   clocks G SM MEM           current graphics/SM/memory clocks (MHz)
 *   max_clocks G SM MEM       maximum clocks (MHz)
 *   power_limit MW            enforced power limit
 *   memory BYTES              total memory
 *
 * A missing or malformed script makes nvmlInit_v2 print why to stderr and return
 * NVML_ERROR_UNKNOWN, so a broken test fails loudly rather than reading zeros.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_NVML_SCRIPT
#error "build with -DFAKE_NVML_SCRIPT='\"/path/to/script\"'"
#endif

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_UNKNOWN 999

#define MAX_DEVICES 8
#define MAX_VALUES 1024

typedef int nvmlReturn_t;

struct series {
    unsigned long long values[MAX_VALUES];
    int len;
    int next;
};

struct fake_device {
    char name[96];
    struct series energy;
    struct series power;
    unsigned long long energy_rate_mw; /* 0: the `energy` series */
    int no_energy;
    long lost_after; /* -1: never */
    long reads;
    unsigned int clocks[3];
    unsigned int max_clocks[3];
    unsigned int power_limit_mw;
    unsigned long long memory_total;
};

typedef struct fake_device *nvmlDevice_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

static struct fake_device devices[MAX_DEVICES];
static int device_count;
/* nvmlInit_v2 calls not yet matched by nvmlShutdown: NVML reference-counts them, and the
 * script (with its read positions) is loaded by the first only. */
static int initialized;
static char driver_version[80] = "580.00.00-fake";
static int cuda_version = 13000;
static struct timespec started; /* when the script was loaded */

static int fail_script(int line, const char *why) {
    fprintf(stderr, "fake_nvml: %s:%d: %s\n", FAKE_NVML_SCRIPT, line, why);
    return NVML_ERROR_UNKNOWN;
}

static int append_values(struct series *s, char *rest, int line) {
    char *tok = strtok(rest, " \t\r\n");
    if (!tok) return fail_script(line, "expected at least one value");
    for (; tok; tok = strtok(NULL, " \t\r\n")) {
        char *end;
        unsigned long long v = strtoull(tok, &end, 10);
        if (*end != '\0') return fail_script(line, "not an unsigned integer");
        if (s->len == MAX_VALUES) return fail_script(line, "too many values");
        s->values[s->len++] = v;
    }
    return NVML_SUCCESS;
}

static int parse_uints(char *rest, unsigned int *out, int n, int line) {
    for (int i = 0; i < n; i++) {
        char *tok = strtok(i == 0 ? rest : NULL, " \t\r\n");
        char *end;
        if (!tok) return fail_script(line, "too few values");
        out[i] = (unsigned int)strtoul(tok, &end, 10);
        if (*end != '\0') return fail_script(line, "not an unsigned integer");
    }
    return NVML_SUCCESS;
}

/* Reads the script; returns the code nvmlInit_v2 answers. */
static int load_script(void) {
    FILE *f = fopen(FAKE_NVML_SCRIPT, "r");
    if (!f) return fail_script(0, "cannot open the script");
    char buf[8192];
    int line = 0, init_code = NVML_SUCCESS, rc = NVML_SUCCESS;
    struct fake_device *dev = NULL;
    memset(devices, 0, sizeof devices);
    device_count = 0;
    while (rc == NVML_SUCCESS && fgets(buf, sizeof buf, f)) {
        line++;
        char *hash = strchr(buf, '#');
        if (hash) *hash = '\0';
        char *key = buf + strspn(buf, " \t");
        size_t klen = strcspn(key, " \t\r\n");
        if (klen == 0) continue;
        char *rest = key + klen;
        if (*rest) *rest++ = '\0';
        rest += strspn(rest, " \t");
        if (strcmp(key, "init") == 0) {
            init_code = atoi(rest);
        } else if (strcmp(key, "driver") == 0) {
            snprintf(driver_version, sizeof driver_version, "%.*s", (int)strcspn(rest, "\r\n"), rest);
        } else if (strcmp(key, "cuda") == 0) {
            cuda_version = atoi(rest);
        } else if (strcmp(key, "device") == 0) {
            if (device_count == MAX_DEVICES) rc = fail_script(line, "too many devices");
            else {
                dev = &devices[device_count++];
                dev->lost_after = -1;
                snprintf(dev->name, sizeof dev->name, "%.*s", (int)strcspn(rest, "\r\n"), rest);
            }
        } else if (!dev) {
            rc = fail_script(line, "a device directive before any `device` line");
        } else if (strcmp(key, "energy") == 0) {
            rc = append_values(&dev->energy, rest, line);
        } else if (strcmp(key, "power") == 0) {
            rc = append_values(&dev->power, rest, line);
        } else if (strcmp(key, "energy_rate") == 0) {
            unsigned int mw;
            rc = parse_uints(rest, &mw, 1, line);
            dev->energy_rate_mw = mw;
        } else if (strcmp(key, "no_energy") == 0) {
            dev->no_energy = 1;
        } else if (strcmp(key, "lost_after") == 0) {
            dev->lost_after = atol(rest);
        } else if (strcmp(key, "clocks") == 0) {
            rc = parse_uints(rest, dev->clocks, 3, line);
        } else if (strcmp(key, "max_clocks") == 0) {
            rc = parse_uints(rest, dev->max_clocks, 3, line);
        } else if (strcmp(key, "power_limit") == 0) {
            rc = parse_uints(rest, &dev->power_limit_mw, 1, line);
        } else if (strcmp(key, "memory") == 0) {
            dev->memory_total = strtoull(rest, NULL, 10);
        } else {
            rc = fail_script(line, "unknown directive");
        }
    }
    fclose(f);
    clock_gettime(CLOCK_MONOTONIC, &started);
    return rc != NVML_SUCCESS ? rc : init_code;
}

/* The device behind a handle, or NULL when the handle is not one of ours. */
static struct fake_device *lookup(nvmlDevice_t d) {
    if (d < devices || d >= devices + device_count) return NULL;
    return d;
}

/* Common checks of every device call: initialised, a valid handle, the GPU not lost. */
static int check(nvmlDevice_t d) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    struct fake_device *dev = lookup(d);
    if (!dev) return NVML_ERROR_INVALID_ARGUMENT;
    if (dev->lost_after >= 0 && dev->reads >= dev->lost_after) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

/* The next value of a series (the last one repeats) and one more successful read. */
static unsigned long long next_value(struct fake_device *dev, struct series *s) {
    unsigned long long v = s->len == 0 ? 0 : s->values[s->next < s->len ? s->next : s->len - 1];
    if (s->next < s->len) s->next++;
    __atomic_add_fetch(&dev->reads, 1, __ATOMIC_SEQ_CST);
    return v;
}

nvmlReturn_t nvmlInit_v2(void) {
    if (initialized == 0) {
        int rc = load_script();
        if (rc != NVML_SUCCESS) return rc;
    }
    initialized++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t copy_string(const char *s, char *out, unsigned int length) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, s);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_string(driver_version, version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *version = cuda_version;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *count = (unsigned int)device_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)device_count) return NVML_ERROR_INVALID_ARGUMENT;
    struct fake_device *dev = &devices[index];
    if (dev->lost_after >= 0 && dev->reads >= dev->lost_after) return NVML_ERROR_GPU_IS_LOST;
    *device = dev;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    int rc = check(device);
    return rc != NVML_SUCCESS ? rc : copy_string(device->name, name, length);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    int rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (device->no_energy) return NVML_ERROR_NOT_SUPPORTED;
    if (device->energy_rate_mw > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double s = (double)(now.tv_sec - started.tv_sec) + 1e-9 * (double)(now.tv_nsec - started.tv_nsec);
        __atomic_add_fetch(&device->reads, 1, __ATOMIC_SEQ_CST);
        *energy = (unsigned long long)((double)device->energy_rate_mw * s);
        return NVML_SUCCESS;
    }
    *energy = next_value(device, &device->energy);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    int rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    *power = (unsigned int)next_value(device, &device->power);
    return NVML_SUCCESS;
}

/* A current or maximum clock (graphics 0, SM 1, memory 2); 0 MHz in the script means the
 * query is not supported. */
static nvmlReturn_t clock_of(nvmlDevice_t device, int type, unsigned int *clock, int max) {
    int rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (type < 0 || type > 2) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int v = max ? device->max_clocks[type] : device->clocks[type];
    if (v == 0) return NVML_ERROR_NOT_SUPPORTED;
    *clock = v;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    return clock_of(device, type, clock, 0);
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    return clock_of(device, type, clock, 1);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    int rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (device->power_limit_mw == 0) return NVML_ERROR_NOT_SUPPORTED;
    *limit = device->power_limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    int rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (device->memory_total == 0) return NVML_ERROR_NOT_SUPPORTED;
    memory->total = device->memory_total;
    memory->reserved = 0;
    memory->used = 0;
    memory->free = device->memory_total;
    return NVML_SUCCESS;
}
