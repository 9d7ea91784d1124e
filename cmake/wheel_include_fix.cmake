# ROS 2 wheels from PyPI export CMake targets whose include directories name the machine that built the
# wheels (/opt/python/cp3xx-cp3xx/include/... and a NumPy include under it). CMake refuses imported targets
# with non-existent include paths, so at the end of the configure step rewrite those entries to this
# interpreter's Python and NumPy include directories. On a regular ROS 2 install no target matches and
# this is a no-op.
#
# rosidl_generator_py also exports this interpreter's Python/NumPy include directories with the package's own
# Python type-support target. When the virtual environment lives inside the checkout (as `make setup` makes
# it) CMake rejects an exported include path under the source directory, so those entries are kept for the
# build only.
function(lumina_fix_wheel_include_dirs)
  set(own_target ${PROJECT_NAME}__rosidl_generator_py)
  if(TARGET ${own_target})
    get_target_property(dirs ${own_target} INTERFACE_INCLUDE_DIRECTORIES)
    set(fixed "")
    foreach(dir IN LISTS dirs)
      string(FIND "${dir}" "${CMAKE_SOURCE_DIR}/" pos)
      if(pos EQUAL 0)
        list(APPEND fixed "$<BUILD_INTERFACE:${dir}>")
      else()
        list(APPEND fixed "${dir}")
      endif()
    endforeach()
    set_target_properties(${own_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
  endif()

  get_property(targets DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(needs_fix FALSE)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(dirs AND "${dirs}" MATCHES "/opt/python/")
      set(needs_fix TRUE)
    endif()
  endforeach()
  if(NOT needs_fix)
    return()
  endif()
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs OR NOT "${dirs}" MATCHES "/opt/python/")
      continue()
    endif()
    set(fixed "")
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "^/opt/python/.*numpy")
        list(APPEND fixed ${Python3_NumPy_INCLUDE_DIRS})
      elseif(dir MATCHES "^/opt/python/")
        list(APPEND fixed ${Python3_INCLUDE_DIRS})
      else()
        list(APPEND fixed "${dir}")
      endif()
    endforeach()
    list(REMOVE_DUPLICATES fixed)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
  endforeach()
endfunction()
