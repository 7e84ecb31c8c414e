// autograd/fft.cpp (to be written)
#include "autograd/ops.h"
