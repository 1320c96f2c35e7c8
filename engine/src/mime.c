/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the mime owner */
#include "moray/mime.h"
