/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: implemented by the tcp_reasm owner */
#include "moray/tcp_reasm.h"
