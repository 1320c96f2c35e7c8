/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder */
#include "moray/sigsrc.h"
