/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the ipfrag owner */
#include "moray/ipfrag.h"
