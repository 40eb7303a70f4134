/*
 * ringfuse-probe --plan (plan.c): projections of threads, memory and polling CPU of the
 * io-uring transport for this machine or made-up ones.
 */
#ifndef RF_TOOLS_PLAN_H
#define RF_TOOLS_PLAN_H

/* argv[0] is "--plan"; returns the exit status. */
int rf_plan_main(int argc, char *argv[]);

#endif /* RF_TOOLS_PLAN_H */
