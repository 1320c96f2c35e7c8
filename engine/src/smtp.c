/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the smtp owner */
#include "moray/smtp.h"
