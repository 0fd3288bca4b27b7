// A hostile libjvm.so: it exports HotSpot's VMStructs symbols
// (gHotSpotVMStructs and the variables that describe its entries), crafted
// as the FAKEJVM_MODE environment variable says:
//   endless  a structures table of 32768 entries with no end, every name
//            4096 bytes without a NUL;
//   heaps    (or unset) a well-formed table whose code cache claims
//            2^31-1 heaps.
// Built as libjvm.so and dlopened by fakejvmhost.c.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *typeName, *fieldName, *typeString;
    int32_t isStatic;
    uint64_t offset;
    void *address;
} Entry;

typedef struct {
    const char *typeName, *superclassName;
    int32_t isOop, isInteger, isUnsigned;
    uint64_t size;
} TypeEntry;

Entry *gHotSpotVMStructs;
uint64_t gHotSpotVMStructEntryArrayStride = sizeof(Entry);
uint64_t gHotSpotVMStructEntryTypeNameOffset = offsetof(Entry, typeName);
uint64_t gHotSpotVMStructEntryFieldNameOffset = offsetof(Entry, fieldName);
uint64_t gHotSpotVMStructEntryTypeStringOffset = offsetof(Entry, typeString);
uint64_t gHotSpotVMStructEntryIsStaticOffset = offsetof(Entry, isStatic);
uint64_t gHotSpotVMStructEntryOffsetOffset = offsetof(Entry, offset);
uint64_t gHotSpotVMStructEntryAddressOffset = offsetof(Entry, address);
TypeEntry *gHotSpotVMTypes;
uint64_t gHotSpotVMTypeEntryArrayStride = sizeof(TypeEntry);
uint64_t gHotSpotVMTypeEntryTypeNameOffset = offsetof(TypeEntry, typeName);
uint64_t gHotSpotVMTypeEntrySizeOffset = offsetof(TypeEntry, size);

static struct { int32_t len, max; void **data; } heaps_array;
static void *heaps_var = &heaps_array;
static struct { char pad[16]; uint64_t low, high; char pad2[16]; uint64_t map_low; int32_t log2; } heap = {
    .low = 0x10000, .high = 0x20000, .map_low = 0x10000, .log2 = 6};
static void *heap_list[1] = {&heap};

#define F(t, f, off) {t, f, 0, 0, off, 0}
static Entry table[] = {
    {"CodeCache", "_heaps", 0, 1, 0, &heaps_var},
    F("GrowableArrayBase", "_len", 0),
    F("GrowableArray<int>", "_data", 8),
    F("CodeHeap", "_memory", 16),
    F("CodeHeap", "_segmap", 48),
    F("CodeHeap", "_log2_segment_size", 64),
    F("VirtualSpace", "_low_boundary", 0),
    F("VirtualSpace", "_high_boundary", 8),
    F("CodeBlob", "_name", 8),
    F("CodeBlob", "_frame_complete_offset", 0x18),
    F("CodeBlob", "_frame_size", 0x1c),
    F("CodeBlob", "_code_begin", 0x28),
    F("CodeBlob", "_code_end", 0x30),
    F("CompiledMethod", "_method", 0x60),
    {0},
};
static TypeEntry types[] = {{"HeapBlock", 0, 0, 0, 0, 16}, {0}};

__attribute__((constructor)) static void craft(void) {
    const char *mode = getenv("FAKEJVM_MODE");
    gHotSpotVMStructs = table;
    gHotSpotVMTypes = types;
    heaps_array.data = heap_list;
    heaps_array.len = 1;
    if (mode && !strcmp(mode, "endless")) {
        size_t n = 32768;
        char *name = malloc(4096);
        memset(name, 'A', 4096);
        Entry *e = malloc(n * sizeof(Entry));
        for (size_t i = 0; i < n; i++) e[i] = (Entry){name, name, name, 0, 0, 0};
        gHotSpotVMStructs = e;
    } else {
        heaps_array.len = 0x7fffffff;
    }
}
