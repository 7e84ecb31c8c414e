// apps/common/continual.h — the continual-learning harness for split image classes, in one
// include: task splits, index subsets, scenarios, masks and accuracy (continual_data.h), replay
// buffers (continual_replay.h) and the accuracy-matrix metrics and writers (continual_metrics.h).
#pragma once
#include "apps/common/continual_data.h"
#include "apps/common/continual_metrics.h"
#include "apps/common/continual_replay.h"
