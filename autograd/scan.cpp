// autograd/scan.cpp (to be written)
#include "autograd/ops.h"
