// autograd/nn_ops.cpp (to be written)
#include "autograd/ops.h"
