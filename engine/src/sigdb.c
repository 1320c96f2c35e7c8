/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the sigdb owner */
#include "moray/sigdb.h"
