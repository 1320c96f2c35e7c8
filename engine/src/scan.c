/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the scan owner */
#include "moray/scan.h"
