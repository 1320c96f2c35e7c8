/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder: the signature-source parser and compiler API (sigsrc owner) */
#ifndef MORAY_SIGSRC_H
#define MORAY_SIGSRC_H
#include "moray/sigdb.h"
#endif /* MORAY_SIGSRC_H */
