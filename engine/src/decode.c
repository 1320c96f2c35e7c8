/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the decode owner */
#include "moray/decode.h"
