//! fork/exec of children: credentials, environment, pipes, cgroup placement.
