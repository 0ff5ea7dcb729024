#ifndef PORTSYNCD_FUZZER_H
#define PORTSYNCD_FUZZER_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's entry point for a program that has its own main (compiler-rt's FuzzerInterface.h).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
