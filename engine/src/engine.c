/* SPDX-License-Identifier: BSD-3-Clause */
#include "moray/engine.h"
