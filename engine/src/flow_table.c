/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the flow_table owner */
#include "moray/flow.h"
