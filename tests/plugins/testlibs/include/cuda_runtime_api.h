// Minimal stand-in for the CUDA runtime header, so the test plugin libraries compile with g++ alone
// (TensorRT's headers only need the stream/event handle types from it). Never used for the shipped library.
#pragma once
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
