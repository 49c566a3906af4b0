#include "cmpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static void *library_handle;
static char error_text[512];
static char version_text[512];
static int is_open_mpi;

// Open MPI: MPI_Comm, MPI_Datatype and MPI_Op are pointers to predefined objects that
// the library exports (ompi_mpi_comm_world, ompi_mpi_double, …).
typedef void *ompi_handle;
// MPICH: they are ints with fixed values (mpi.h of MPICH 3 and 4).
typedef int mpich_handle;
enum {
    MPICH_COMM_WORLD = 0x44000000,
    MPICH_BYTE = 0x4c00010d,
    MPICH_DOUBLE = 0x4c00080b,
    MPICH_SUM = 0x58000003,
};

static int (*mpi_initialized)(int *);
static int (*mpi_init)(int *, char ***);
static int (*mpi_finalized)(int *);
static int (*mpi_finalize)(void);
static int (*mpi_get_library_version)(char *, int *);

static struct {
    int (*comm_rank)(ompi_handle, int *);
    int (*comm_size)(ompi_handle, int *);
    int (*allreduce)(const void *, void *, int, ompi_handle, ompi_handle, ompi_handle);
    int (*allgather)(const void *, int, ompi_handle, void *, int, ompi_handle, ompi_handle);
    int (*allgatherv)(const void *, int, ompi_handle, void *, const int *, const int *, ompi_handle, ompi_handle);
    int (*barrier)(ompi_handle);
    int (*abort)(ompi_handle, int);
    ompi_handle world, byte, float64, sum;
} ompi;

static struct {
    int (*comm_rank)(mpich_handle, int *);
    int (*comm_size)(mpich_handle, int *);
    int (*allreduce)(const void *, void *, int, mpich_handle, mpich_handle, mpich_handle);
    int (*allgather)(const void *, int, mpich_handle, void *, int, mpich_handle, mpich_handle);
    int (*allgatherv)(const void *, int, mpich_handle, void *, const int *, const int *, mpich_handle, mpich_handle);
    int (*barrier)(mpich_handle);
    int (*abort)(mpich_handle, int);
} mpich;

static int world_size;

static void *need(const char *name) {
    void *p = dlsym(library_handle, name);
    if (!p && !error_text[0]) snprintf(error_text, sizeof error_text, "the MPI library has no symbol %s", name);
    return p;
}

int sparc_mpi_load(const char *library) {
    if (library_handle) return 0;
    error_text[0] = 0;
    // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve their symbols against libmpi.
    library_handle = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
    if (!library_handle) {
        const char *why = dlerror();
        snprintf(error_text, sizeof error_text, "cannot load %s: %s", library, why ? why : "unknown error");
        return -1;
    }
    is_open_mpi = dlsym(library_handle, "ompi_mpi_comm_world") != NULL;
    *(void **)&mpi_initialized = need("MPI_Initialized");
    *(void **)&mpi_init = need("MPI_Init");
    *(void **)&mpi_finalized = need("MPI_Finalized");
    *(void **)&mpi_finalize = need("MPI_Finalize");
    *(void **)&mpi_get_library_version = need("MPI_Get_library_version");
    void *rank = need("MPI_Comm_rank"), *size = need("MPI_Comm_size"), *allreduce = need("MPI_Allreduce");
    void *allgather = need("MPI_Allgather"), *allgatherv = need("MPI_Allgatherv");
    void *barrier = need("MPI_Barrier"), *abort_ = need("MPI_Abort");
    if (is_open_mpi) {
        *(void **)&ompi.comm_rank = rank; *(void **)&ompi.comm_size = size;
        *(void **)&ompi.allreduce = allreduce; *(void **)&ompi.allgather = allgather;
        *(void **)&ompi.allgatherv = allgatherv; *(void **)&ompi.barrier = barrier; *(void **)&ompi.abort = abort_;
        ompi.world = need("ompi_mpi_comm_world");
        ompi.byte = need("ompi_mpi_byte");
        ompi.float64 = need("ompi_mpi_double");
        ompi.sum = need("ompi_mpi_op_sum");
    } else {
        *(void **)&mpich.comm_rank = rank; *(void **)&mpich.comm_size = size;
        *(void **)&mpich.allreduce = allreduce; *(void **)&mpich.allgather = allgather;
        *(void **)&mpich.allgatherv = allgatherv; *(void **)&mpich.barrier = barrier; *(void **)&mpich.abort = abort_;
    }
    if (error_text[0]) {
        dlclose(library_handle);
        library_handle = NULL;
        return -1;
    }
    return 0;
}

const char *sparc_mpi_flavour(void) { return !library_handle ? "" : is_open_mpi ? "Open MPI" : "MPICH"; }
const char *sparc_mpi_error(void) { return error_text; }

int sparc_mpi_init(int *rank, int *size) {
    int initialized = 0;
    mpi_initialized(&initialized);
    if (!initialized && mpi_init(NULL, NULL) != 0) return -1;
    int rc = is_open_mpi ? (ompi.comm_rank(ompi.world, rank) | ompi.comm_size(ompi.world, size))
                         : (mpich.comm_rank(MPICH_COMM_WORLD, rank) | mpich.comm_size(MPICH_COMM_WORLD, size));
    world_size = *size;
    char text[8192];
    int length = 0;
    if (mpi_get_library_version(text, &length) == 0) {
        text[length < (int)sizeof text ? length : (int)sizeof text - 1] = 0;
        text[strcspn(text, "\n,")] = 0;
        snprintf(version_text, sizeof version_text, "%s", text);
    }
    return rc;
}

int sparc_mpi_allreduce_sum_double(double *buffer, int count) {
    // MPI_IN_PLACE: ((void *) 1) in Open MPI's mpi.h, ((void *) -1) in MPICH's.
    void *in_place = is_open_mpi ? (void *)1 : (void *)-1;
    return is_open_mpi ? ompi.allreduce(in_place, buffer, count, ompi.float64, ompi.sum, ompi.world)
                       : mpich.allreduce(in_place, buffer, count, MPICH_DOUBLE, MPICH_SUM, MPICH_COMM_WORLD);
}

int sparc_mpi_allgather_int64(int64_t value, int64_t *out) {
    // As 8 bytes: every rank of a job shares one byte order.
    return is_open_mpi ? ompi.allgather(&value, 8, ompi.byte, out, 8, ompi.byte, ompi.world)
                       : mpich.allgather(&value, 8, MPICH_BYTE, out, 8, MPICH_BYTE, MPICH_COMM_WORLD);
}

int sparc_mpi_allgatherv_bytes(const void *bytes, int count, void *out, const int *counts) {
    int displacements[world_size > 0 ? world_size : 1];
    long offset = 0;
    for (int r = 0; r < world_size; r++) { displacements[r] = (int)offset; offset += counts[r]; }
    return is_open_mpi ? ompi.allgatherv(bytes, count, ompi.byte, out, counts, displacements, ompi.byte, ompi.world)
                       : mpich.allgatherv(bytes, count, MPICH_BYTE, out, counts, displacements, MPICH_BYTE, MPICH_COMM_WORLD);
}

int sparc_mpi_barrier(void) {
    return is_open_mpi ? ompi.barrier(ompi.world) : mpich.barrier(MPICH_COMM_WORLD);
}

void sparc_mpi_abort(int code) {
    if (is_open_mpi) ompi.abort(ompi.world, code); else mpich.abort(MPICH_COMM_WORLD, code);
}

int sparc_mpi_finalize(void) {
    int finalized = 0;
    mpi_finalized(&finalized);
    return finalized ? 0 : mpi_finalize();
}

const char *sparc_mpi_library_version(void) { return version_text; }
