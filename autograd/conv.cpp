// autograd/conv.cpp — conv2d (im2col + BLAS), max_pool2d, avg_pool2d. (to be written)
#include "autograd/ops.h"
